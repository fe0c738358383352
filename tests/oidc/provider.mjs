// A real OpenID provider (oidc-provider, standards-complete) for TokenHub's OIDC tests.
// Started by tests/integration/oidc.rs:  PORT=… CLIENT_ID=… CLIENT_SECRET=… REDIRECT_URI=…
// node tests/oidc/provider.mjs. Prints "listening" when ready.
//
// Accounts: any login is an account whose e-mail is the login ("unverified:" + address for an
// unverified e-mail). Interactions are oidc-provider's development forms, which the test
// submits like a browser would.
//
// Two test switches (GET, on the provider's own port), for what a correct provider never
// does on its own:
//   /__test/clock?offset=<seconds>  the token endpoint's clock runs <seconds> off (-7200: the
//                                   ID tokens it mints are two hours old, i.e. expired);
//   /__test/tamper?on=1             the token endpoint answers ID tokens with a broken signature.
import Provider from 'oidc-provider';

const { PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env;
const issuer = `http://127.0.0.1:${PORT}`;

let offsetMs = 0;
let skewed = false;
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + (skewed ? offsetMs : 0);
let tamper = false;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email', 'profile'],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['tokenhub-test-cookie-key-0123456789'] },
  async findAccount(ctx, id) {
    const unverified = id.startsWith('unverified:');
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: unverified ? id.slice('unverified:'.length) : id, email_verified: !unverified };
      },
    };
  },
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/clock') {
    offsetMs = Number(ctx.query.offset || 0) * 1000;
    ctx.body = { offset: offsetMs / 1000 };
    return;
  }
  if (ctx.path === '/__test/tamper') {
    tamper = ctx.query.on === '1';
    ctx.body = { tamper };
    return;
  }
  skewed = ctx.path === '/token';
  try {
    await next();
  } finally {
    skewed = false;
  }
  if (tamper && ctx.path === '/token' && ctx.body && typeof ctx.body.id_token === 'string') {
    const [header, payload, signature] = ctx.body.id_token.split('.');
    const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
    ctx.body = { ...ctx.body, id_token: `${header}.${payload}.${flipped}` };
  }
});

provider.listen(Number(PORT), '127.0.0.1', () => {
  console.log('listening');
});
