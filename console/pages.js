// @ts-check
// The console's pages. Each builds its DOM with `h` (text is never parsed as HTML) from the
// public API's answers, and says what to do when a list is empty or a call fails.
import { api, ApiError, live } from './api.js';

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A time in the viewer's zone, UTC on hover. @param {string | null | undefined} t */
export function time(t) {
  if (!t) return h('span', {}, '—');
  const d = new Date(t);
  return h('time', { datetime: t, title: d.toISOString() }, d.toLocaleString());
}

/** @param {number | null | undefined} n */
export const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());

/** @param {string} status */
const badge = (status) => h('span', { class: `badge ${status}` }, status);

/** @param {unknown} e */
export function errorBox(e) {
  const text = e instanceof ApiError ? `${e.message} (${e.code})` : String(e);
  return h('div', { class: 'notice error', role: 'alert' }, text);
}

/**
 * For a list whose loads can overlap (a filter submitted, a live event, an action's refresh):
 * each load takes a turn, and only the newest may show what it read, so a slower earlier
 * answer never replaces a newer one.
 * @returns {() => () => boolean} take a turn; the turn says whether it is still the newest
 */
export function newestOnly() {
  let newest = 0;
  return () => {
    const mine = ++newest;
    return () => mine === newest;
  };
}

/** A value shown once, with a copy button. @param {string} label @param {string} value */
function shownOnce(label, value) {
  const copy = h('button', { type: 'button', class: 'secondary', onclick: () => navigator.clipboard?.writeText(value) }, 'Copy');
  return h('div', { class: 'notice', 'data-testid': 'shown-once' },
    h('strong', {}, label), h('p', {}, 'Shown only now: store it before you leave this page.'),
    h('div', { class: 'secret' }, h('code', { 'data-testid': 'secret-value' }, value), copy));
}

/** @param {string[]} head @param {Node[]} rows @param {string} empty */
function table(head, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  // Focusable, so that a table wider than the screen scrolls from the keyboard too.
  return h('div', { class: 'table-wrap', tabindex: 0 }, h('table', { class: 'cards' },
    h('thead', {}, h('tr', {}, ...head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows.map((r) => labelled(r, head)))));
}

/** Names each cell of `row` after its column (`data-label`), so that on a phone a row can be
 * shown as a card of labelled lines. @template {Node} T @param {T} row @param {string[]} head */
function labelled(row, head) {
  if (row instanceof HTMLElement) [...row.children].forEach((cell, i) => cell.setAttribute('data-label', head[i] ?? ''));
  return row;
}

/**
 * A list read 100 at a time from a cursor-paged route (`data`, `next_cursor`), with a button
 * for the next page and a note while it is cut. `row` builds a row; `reload` starts again.
 * @param {string} path @param {string[]} head @param {(item: any) => Node} row @param {string} empty
 * @param {string} moreLabel
 */
function pagedList(path, head, row, empty, moreLabel) {
  const list = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, moreLabel);
  /** @type {any[]} */
  let shown = [];
  /** @type {string | null} */
  let cursor = null;
  // A reload starts a new list: a page still on its way for the old one is dropped.
  const turn = newestOnly();
  let current = turn();
  const fetchPage = async () => {
    const mine = current;
    const query = new URLSearchParams({ limit: '100' });
    if (cursor) query.set('cursor', cursor);
    const data = await api('GET', `${path}?${query}`);
    if (!mine()) return;
    shown = shown.concat(data.data);
    cursor = data.next_cursor ?? null;
    list.replaceChildren(table(head, shown.map(row), empty),
      cursor ? h('p', { class: 'empty' }, `The first ${shown.length}; more below.`) : '');
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => fetchPage().catch((e) => list.replaceChildren(errorBox(e))));
  const reload = async () => {
    shown = []; cursor = null; current = turn();
    try { await fetchPage(); } catch (e) { list.replaceChildren(errorBox(e)); }
  };
  return { nodes: [list, more], reload };
}

/** `limit=100`, and the cursor of the page before when there is one. @param {string | null} cursor */
function pageQuery(cursor) {
  const query = new URLSearchParams({ limit: '100' });
  if (cursor) query.set('cursor', cursor);
  return query;
}

/**
 * A table read a page at a time (`load(cursor)` answers `data` and `next_cursor`): while the
 * list is cut it says so, with a button for the next page.
 * @param {(cursor: string | null) => Promise<any>} load @param {string} moreLabel
 * @param {(rows: any[]) => Node} draw
 */
async function pagedTable(load, moreLabel, draw) {
  const box = h('div');
  /** @type {any[]} */
  let shown = [];
  /** @type {string | null} */
  let cursor = null;
  const more = h('button', { type: 'button', class: 'secondary' }, moreLabel);
  const next = async () => {
    const data = await load(cursor);
    shown = shown.concat(data.data);
    cursor = data.next_cursor ?? null;
    box.replaceChildren(draw(shown), cursor ? h('p', { class: 'empty' }, `The first ${shown.length}; more below.`) : '', cursor ? more : '');
  };
  more.addEventListener('click', () => next().catch((e) => box.append(errorBox(e))));
  await next();
  return box;
}

/** @param {HTMLElement} view @param {string} title @param {...(Node | string | null | undefined | false)} content
 * (what is null, undefined or false is left out: `replaceChildren` would print "null") */
function page(view, title, ...content) {
  document.title = `${title} · TokenHub`;
  view.replaceChildren(h('h1', {}, title), ...content.filter((c) => c !== null && c !== undefined && c !== false));
}

// ---- Sign in -------------------------------------------------------------------------------

/** @param {HTMLElement} view @param {(answer: any) => void} done */
export async function signIn(view, done) {
  const error = h('div');
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'stack', 'aria-label': 'Sign in' },
    h('label', {}, 'E-mail', email), h('label', {}, 'Password', password),
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.replaceChildren();
    try {
      const answer = await api('POST', '/auth/login', { body: { email: email.value, password: password.value } });
      if (answer.mfa_required) secondFactor(view, answer.mfa_token, done);
      else done(answer);
    } catch (e) { error.replaceChildren(errorBox(e)); }
  });
  const providers = await api('GET', '/auth/oidc').catch(() => ({ providers: [] }));
  const buttons = providers.providers.map((p) => h('a', { href: `/auth/oidc/${p}/start`, class: 'badge' }, `Sign in with ${p}`));
  page(view, 'Sign in', error, form, buttons.length ? h('p', { class: 'actions' }, ...buttons) : null);
  email.focus();
}

/** @param {HTMLElement} view @param {string} token @param {(answer: any) => void} done */
export function acceptInvite(view, token, done) {
  const error = h('div');
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256 });
  const again = h('input', { type: 'password', name: 'password_again', autocomplete: 'new-password', required: true });
  const form = h('form', { class: 'stack', 'aria-label': 'Accept the invite' },
    h('p', {}, 'Choose a password: 12 characters or more, hard to guess — a few unrelated words make a strong one.'),
    h('label', {}, 'Password', password), h('label', {}, 'Password again', again),
    h('button', { type: 'submit' }, 'Accept the invite'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.replaceChildren();
    if (password.value !== again.value) { error.replaceChildren(errorBox('The two passwords differ.')); return; }
    try {
      const person = await api('POST', `/auth/invites/${encodeURIComponent(token)}/accept`, { body: { password: password.value } });
      // The account is active: sign in with it at once.
      const answer = await api('POST', '/auth/login', { body: { email: person.email, password: password.value } });
      history.replaceState(null, '', '#/');
      if (answer.mfa_required) secondFactor(view, answer.mfa_token, done);
      else done(answer);
    } catch (e) { error.replaceChildren(errorBox(e)); }
  });
  page(view, 'Welcome to TokenHub', error, form);
  password.focus();
  // Or accept it with a sign-in provider whose verified e-mail is the invited one.
  api('GET', '/auth/oidc').then(({ providers }) => {
    if (providers.length === 0) return;
    view.append(h('p', { class: 'actions' }, ...providers.map((p) =>
      h('a', { href: `/auth/oidc/${encodeURIComponent(p)}/start?invite=${encodeURIComponent(token)}`, class: 'badge' }, `Accept with ${p}`))));
  }).catch(() => {});
}

/** @param {HTMLElement} view @param {string} token @param {(answer: any) => void} done */
export function secondFactor(view, token, done) {
  const error = h('div');
  const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6 });
  const recovery = h('input', { name: 'recovery_code', autocomplete: 'off' });
  const form = h('form', { class: 'stack', 'aria-label': 'Second factor' },
    h('label', {}, 'Code from your authenticator app', code),
    h('label', {}, 'or a recovery code', recovery),
    h('button', { type: 'submit' }, 'Continue'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.replaceChildren();
    const body = recovery.value ? { mfa_token: token, recovery_code: recovery.value } : { mfa_token: token, code: code.value };
    try { done(await api('POST', '/auth/login/mfa', { body })); } catch (e) { error.replaceChildren(errorBox(e)); }
  });
  page(view, 'Two-factor authentication', error, form);
  code.focus();
}

/** @param {HTMLElement} view @param {any} me @param {() => void} done */
export async function enrol(view, me, done) {
  const requiredBy = me.tenant_id ? 'Your tenant requires' : 'Your role requires';
  const why = me.totp_enrolment_required
    ? `${requiredBy} two-factor authentication before anything else.`
    : 'Protect your account with a second factor.';
  const linking = me.totp_enrolment_required ? [] : await providerLinks();
  page(view, 'Two-factor authentication', h('p', {}, why), ...enrolment(done), ...linking);
}

/** The enrolment flow: a start button, the QR code and key, the confirming code, then the
 * recovery codes. @param {() => void} done called once the codes are acknowledged */
function enrolment(done) {
  const error = h('div');
  const start = h('button', { type: 'button' }, 'Set up an authenticator app');
  const area = h('div');
  start.addEventListener('click', async () => {
    error.replaceChildren();
    try {
      const e = await api('POST', '/auth/totp/enroll');
      const qr = h('img', { alt: 'QR code for your authenticator app', src: `data:image/svg+xml;base64,${btoa(e.qr_svg)}` });
      const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, required: true });
      const form = h('form', { class: 'stack', 'aria-label': 'Confirm the authenticator' },
        h('label', {}, 'The code it shows now', code), h('button', { type: 'submit' }, 'Turn on two-factor'));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
          const { recovery_codes } = await api('POST', '/auth/totp/confirm', { body: { code: code.value } });
          const ok = h('button', { type: 'button' }, 'I have stored them');
          ok.addEventListener('click', done);
          area.replaceChildren(recoveryCodes(recovery_codes), ok);
          ok.focus();
        } catch (e2) { error.replaceChildren(errorBox(e2)); }
      });
      start.hidden = true;
      area.replaceChildren(h('div', { class: 'qr' }, qr),
        h('p', {}, 'Or type this key: ', h('code', { 'data-testid': 'totp-secret' }, e.secret)), form);
      code.focus();
    } catch (e) { error.replaceChildren(errorBox(e)); }
  });
  return [error, start, area];
}

/** Recovery codes, shown once, to copy or download. @param {string[]} codes */
function recoveryCodes(codes) {
  const text = `TokenHub recovery codes (each signs you in once)\n${codes.join('\n')}\n`;
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', () => navigator.clipboard?.writeText(text).then(() => { copy.textContent = 'Copied'; }, () => {}));
  const download = h('a', { class: 'button secondary', download: 'tokenhub-recovery-codes.txt',
    href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })) }, 'Download');
  return h('div', { class: 'notice' },
    h('strong', {}, 'Recovery codes'),
    h('p', {}, 'Each signs you in once if you lose the app. Shown only now: copy or download them.'),
    h('ul', { 'data-testid': 'recovery-codes' }, ...codes.map((c) => h('li', {}, h('code', {}, c)))),
    h('p', { class: 'actions' }, copy, download));
}

/** Buttons that link an identity at a sign-in provider to this person. */
async function providerLinks() {
  const error = h('div');
  const providers = await api('GET', '/auth/oidc').catch(() => ({ providers: [] }));
  const buttons = providers.providers.map((/** @type {string} */ p) => {
    const b = h('button', { type: 'button', class: 'secondary' }, `Link ${p}`);
    b.addEventListener('click', async () => {
      try { location.href = (await api('POST', `/auth/oidc/${encodeURIComponent(p)}/link`)).url; } catch (e) { error.replaceChildren(errorBox(e)); }
    });
    return b;
  });
  if (!buttons.length) return [];
  return [h('h2', {}, 'Sign-in providers'), h('p', {}, 'Link an account at a provider to sign in with it.'), error, h('p', { class: 'actions' }, ...buttons)];
}

// ---- People (platform) ---------------------------------------------------------------------

const PLATFORM_ROLES = ['super_admin', 'finance_admin', 'auditor'];

/** Everyone with a sign-in (super admin): invite platform people, change a platform person's
 * role, disable anyone. @param {HTMLElement} view @param {any} ctx */
export async function people(view, ctx) {
  const email = h('input', { name: 'email', type: 'email', required: true });
  const role = h('select', { name: 'role' }, ...PLATFORM_ROLES.map((r) => h('option', { value: r }, r)));
  const invited = h('div');
  const form = h('form', { 'aria-label': 'Invite a platform person' },
    h('label', {}, 'E-mail', email), h('label', {}, 'Platform role', role), h('button', { type: 'submit' }, 'Invite'));
  const row = (/** @type {any} */ u) => {
    const active = u.status !== 'disabled';
    const platform = !u.tenant_id;
    let roleCell = u.role;
    if (active && platform && u.user_id !== ctx.me.user_id) {
      const change = h('select', { 'aria-label': `Role of ${u.email}` }, ...PLATFORM_ROLES.map((r) => h('option', { value: r, selected: r === u.role }, r)));
      change.addEventListener('change', async () => {
        try { await api('PATCH', `/admin/users/${u.user_id}`, { body: { role: change.value } }); ctx.toast(`${u.email} is now ${change.value}`); } catch (e) { ctx.toast(String(/** @type {any} */ (e).message ?? e)); }
      });
      roleCell = change;
    }
    const disable = h('button', { type: 'button', class: 'danger' }, 'Disable');
    disable.addEventListener('click', async () => {
      if (!window.confirm(`Disable ${u.email}? They are signed out at once and can no longer sign in; this cannot be undone.`)) return;
      try { await api('DELETE', `/admin/users/${u.user_id}`); ctx.toast(`${u.email} is disabled`); await reload(); } catch (e) { ctx.toast(String(/** @type {any} */ (e).message ?? e)); }
    });
    return h('tr', { 'data-user': u.email },
      h('td', {}, u.email), h('td', {}, roleCell), h('td', {}, u.tenant_id ? h('code', {}, u.tenant_id) : 'platform'),
      h('td', {}, badge(u.status)), h('td', {}, u.totp_enrolled ? 'on' : 'off'), h('td', { class: 'wide' }, time(u.created_at)),
      h('td', {}, active && u.user_id !== ctx.me.user_id ? disable : ''));
  };
  const { nodes, reload } = pagedList('/admin/users', ['E-mail', 'Role', 'Tenant', 'Status', 'Two-factor', 'Invited', ''], row, 'Nobody yet.', 'More people');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const invite = await api('POST', '/admin/users', { body: { email: email.value, role: role.value } });
      invited.replaceChildren(shownOnce(`Invite link for ${email.value} (72 hours, single use)`, invite.invite_url));
      email.value = '';
      await reload();
    } catch (e) { invited.replaceChildren(errorBox(e)); }
  });
  page(view, 'People', h('p', {}, 'Platform people are invited here; a tenant\'s people are invited from its page.'),
    form, invited, ...nodes);
  await reload();
}

// ---- Platform keys -------------------------------------------------------------------------

/** Keys of the platform's own services — gateways, finance, audit (super admin): issue them
 * bound to tenants and networks, revoke them. @param {HTMLElement} view @param {any} ctx */
export async function platformKeys(view, ctx) {
  const name = h('input', { name: 'name', required: true, maxlength: 128, placeholder: 'edge gateway eu-west-1' });
  const role = h('select', { name: 'role' }, ...[['gateway', 'gateway (verify keys, report usage)'], ['finance_admin', 'finance (every tenant\'s usage)'], ['auditor', 'auditor (the audit log)']]
    .map(([value, label]) => h('option', { value }, label)));
  const tenants = h('input', { name: 'tenant_ids', placeholder: 'all tenants' });
  const networks = h('input', { name: 'allowed_ips', placeholder: 'any network' });
  const issued = h('div');
  const form = h('form', { 'aria-label': 'Issue a platform key' },
    h('label', {}, 'Key name', name), h('label', {}, 'Role', role),
    h('label', {}, 'Only for these tenants (ids, comma-separated)', tenants),
    h('label', {}, 'Only from these networks (comma-separated)', networks),
    h('button', { type: 'submit' }, 'Issue platform key'));
  const split = (/** @type {string} */ text) => text.split(',').map((t) => t.trim()).filter(Boolean);
  const row = (/** @type {any} */ k) => {
    const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
    revoke.addEventListener('click', async () => {
      if (!window.confirm(`Revoke “${k.name}”? Every service using it is refused from its next request; this cannot be undone.`)) return;
      try { await api('DELETE', `/admin/platform-keys/${k.public_id}`); ctx.toast(`${k.name} is revoked`); await reload(); } catch (e) { ctx.toast(String(/** @type {any} */ (e).message ?? e)); }
    });
    return h('tr', { 'data-key': k.public_id },
      h('td', {}, k.name), h('td', {}, h('code', {}, k.public_id)), h('td', {}, k.role), h('td', { 'data-testid': 'key-status' }, badge(k.status)),
      h('td', {}, k.tenant_ids?.length ? k.tenant_ids.join(', ') : 'all'), h('td', {}, k.allowed_ips?.length ? k.allowed_ips.join(', ') : 'any'),
      h('td', { class: 'wide' }, time(k.last_used_at)), h('td', {}, k.status === 'revoked' ? '' : revoke));
  };
  const { nodes, reload } = pagedList('/admin/platform-keys', ['Name', 'Id', 'Role', 'Status', 'Tenants', 'Networks', 'Last used', ''], row, 'No platform key yet. Issue one above.', 'More keys');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value, role: role.value, tenant_ids: split(tenants.value), allowed_ips: split(networks.value) };
    try {
      const key = await api('POST', '/admin/platform-keys', { body });
      issued.replaceChildren(shownOnce(`Platform key ${name.value}`, key.api_key));
      name.value = ''; tenants.value = ''; networks.value = '';
      await reload();
    } catch (e) { issued.replaceChildren(errorBox(e)); }
  });
  page(view, 'Platform keys', h('p', {}, 'Keys of your own services: gateways verify keys and report usage, finance reads every tenant\'s usage, auditors read the audit log.'),
    form, issued, ...nodes);
  await reload();
}

// ---- My account ----------------------------------------------------------------------------

/** The signed-in person's own account: password, two-factor, sessions, sign-in providers.
 * @param {HTMLElement} view @param {any} ctx */
export async function account(view, ctx) {
  const me = ctx.me;
  const sessions = h('div');
  const loadSessions = async () => {
    try {
      const list = await api('GET', '/auth/sessions');
      const rows = list.data.map((/** @type {any} */ s) => {
        const end = h('button', { type: 'button', class: 'secondary' }, 'End');
        end.addEventListener('click', async () => {
          if (!window.confirm('End this session? The browser using it is signed out at its next request.')) return;
          try { await api('DELETE', `/auth/sessions/${s.id}`); ctx.toast('Session ended'); await loadSessions(); } catch (e) { sessions.prepend(errorBox(e)); }
        });
        return h('tr', { 'data-session': s.current ? 'current' : 'other' },
          h('td', {}, s.user_agent || 'unknown browser'), h('td', {}, h('code', {}, s.source_ip)),
          h('td', {}, time(s.created_at)), h('td', {}, time(s.last_seen_at)),
          h('td', {}, s.current ? h('strong', {}, 'This session') : end));
      });
      sessions.replaceChildren(table(['Browser', 'Address', 'Signed in', 'Last seen', ''], rows, 'No session.'));
    } catch (e) { sessions.replaceChildren(errorBox(e)); }
  };

  // Password: the other sessions end with the change.
  const current = h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', minlength: 12, maxlength: 256, required: true });
  const passwordOut = h('div');
  const passwordForm = h('form', { class: 'stack', 'aria-label': 'Change password' },
    h('label', {}, 'Current password', current), h('label', {}, 'New password (12 characters or more)', next),
    h('button', { type: 'submit' }, 'Change password'));
  passwordForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const changed = await api('POST', '/auth/password', { body: { current_password: current.value, new_password: next.value } });
      passwordForm.reset();
      const others = changed.sessions_ended === 1 ? '1 other session' : `${changed.sessions_ended} other sessions`;
      passwordOut.replaceChildren(h('div', { class: 'notice', role: 'status' }, `Password changed; ${others} ended.`));
      await loadSessions();
    } catch (e) { passwordOut.replaceChildren(errorBox(e)); }
  });

  // Two-factor: on (new recovery codes, or off), or the enrolment.
  const twoFactor = h('div');
  if (me.totp_enrolled) {
    const out = h('div');
    const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, required: true });
    const codesForm = h('form', { class: 'stack', 'aria-label': 'New recovery codes' },
      h('label', {}, 'Code from your authenticator app', code),
      h('button', { type: 'submit', class: 'secondary' }, 'New recovery codes'));
    codesForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const { recovery_codes } = await api('POST', '/auth/recovery-codes', { body: { code: code.value } });
        codesForm.reset();
        out.replaceChildren(recoveryCodes(recovery_codes), h('p', {}, 'The previous codes no longer work.'));
      } catch (e) { out.replaceChildren(errorBox(e)); }
    });
    const offPassword = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const offCode = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, required: true });
    const offForm = h('form', { class: 'stack', 'aria-label': 'Turn off two-factor' },
      h('label', {}, 'Password', offPassword), h('label', {}, 'Code from your authenticator app', offCode),
      h('button', { type: 'submit', class: 'danger' }, 'Turn off two-factor'));
    offForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const what = 'Turn off two-factor? Signing in then asks only for your password, and your recovery codes stop working.';
      if (!window.confirm(what)) return;
      try {
        await api('DELETE', '/auth/totp', { body: { password: offPassword.value, code: offCode.value } });
        ctx.toast('Two-factor is off');
        await ctx.reload();
      } catch (e) { out.replaceChildren(errorBox(e)); }
    });
    twoFactor.replaceChildren(h('p', { 'data-testid': 'two-factor-state' }, 'Two-factor authentication is on.'), out,
      h('div', { class: 'grid' }, codesForm, offForm));
  } else {
    twoFactor.replaceChildren(h('p', { 'data-testid': 'two-factor-state' }, 'Two-factor authentication is off.'),
      ...enrolment(() => ctx.reload()));
  }

  page(view, 'My account',
    h('p', {}, `${me.email} · ${me.role}`),
    h('h2', {}, 'Password'), passwordForm, passwordOut,
    h('h2', {}, 'Two-factor authentication'), twoFactor,
    h('h2', {}, 'Sessions'), h('p', {}, 'Where you are signed in. Ending a session signs that browser out.'), sessions,
    ...await providerLinks());
  await loadSessions();
}

// ---- Tenants -------------------------------------------------------------------------------

/** @param {HTMLElement} view @param {any} ctx */
export async function tenants(view, ctx) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const status = params.get('status') ?? '';
  const planFilter = params.get('plan') ?? '';
  const search = params.get('q') ?? '';
  const filters = h('form', { 'aria-label': 'Filter tenants' });
  const q = h('input', { name: 'q', value: search, placeholder: 'name or id' });
  const st = h('select', { name: 'status' }, ...['', 'active', 'suspended', 'deleted'].map((s) => h('option', { value: s, selected: s === status }, s || 'any status')));
  const pl = h('select', { name: 'plan' }, ...['', 'free', 'pro', 'enterprise'].map((s) => h('option', { value: s, selected: s === planFilter }, s || 'any plan')));
  filters.append(h('label', {}, 'Search', q), h('label', {}, 'Status', st), h('label', {}, 'Plan filter', pl), h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    if (q.value) next.set('q', q.value);
    if (st.value) next.set('status', st.value);
    if (pl.value) next.set('plan', pl.value);
    ctx.navigate(`#/tenants?${next}`);
  });

  const created = h('div');
  const name = h('input', { name: 'name', required: true, maxlength: 128 });
  const plan = h('select', { name: 'plan' }, ...['free', 'pro', 'enterprise'].map((p) => h('option', { value: p }, p)));
  const create = h('form', { 'aria-label': 'Create a tenant' }, h('label', {}, 'Name', name), h('label', {}, 'Plan', plan), h('button', { type: 'submit' }, 'Create tenant'));
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const t = await api('POST', '/admin/tenants', { body: { name: name.value, plan: plan.value } });
      created.replaceChildren(shownOnce(`Admin key of ${t.name}`, t.api_key));
      name.value = '';
      await load();
    } catch (e) { created.replaceChildren(errorBox(e)); }
  });

  const list = h('div');
  /** Cursors of the pages shown so far (the first page has none). */
  const cursors = [''];
  const turn = newestOnly();
  async function load() {
    const newest = turn();
    const query = new URLSearchParams({ limit: '50' });
    if (status) query.set('status', status);
    if (planFilter) query.set('plan', planFilter);
    if (search) query.set('q', search);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set('cursor', cursor);
    const pageData = await api('GET', `/admin/tenants?${query}`);
    if (!newest()) return;
    const rows = pageData.data.map((t) => tenantRow(t, ctx, load));
    const pager = h('div', { class: 'actions' });
    if (cursors.length > 1) {
      const prev = h('button', { type: 'button', class: 'secondary' }, 'Previous page');
      prev.addEventListener('click', () => { cursors.pop(); load(); });
      pager.append(prev);
    }
    if (pageData.next_cursor) {
      const next = h('button', { type: 'button', class: 'secondary' }, 'Next page');
      next.addEventListener('click', () => { cursors.push(pageData.next_cursor); load(); });
      pager.append(next);
    }
    list.replaceChildren(table(['Name', 'Id', 'Plan', 'Status', 'Created', ''], rows, 'No tenant matches. Create one above, or change the filters.'), pager);
  }
  page(view, 'Tenants', h('h2', {}, 'Create'), create, created, h('h2', {}, 'All tenants'), filters, list);
  try { await load(); } catch (e) { list.replaceChildren(errorBox(e)); }
  ctx.onLive('/audit/events/stream', undefined, (item) => { if (item.aggregate_type === 'tenant') load(); });
}

/** @param {any} t @param {any} ctx @param {() => Promise<void>} reload */
function tenantRow(t, ctx, reload) {
  const actions = h('div', { class: 'actions' });
  const act = (label, cls, fn) => {
    const b = h('button', { type: 'button', class: cls }, label);
    b.addEventListener('click', async () => { try { await fn(); await reload(); } catch (e) { ctx.toast(e instanceof ApiError ? e.message : String(e)); } });
    return b;
  };
  if (t.status !== 'deleted') actions.append(h('a', { href: `#/tenant/${t.tenant_id}` }, 'Open'));
  if (t.status === 'active') {
    actions.append(act('Suspend', 'secondary', async () => {
      if (!window.confirm(`Suspend “${t.name}”? Its keys are refused (403 tenant_suspended) and its people cannot act until it is reactivated.`)) return;
      await api('POST', `/admin/tenants/${t.tenant_id}/suspend`, { body: {} });
    }));
  }
  if (t.status === 'suspended') actions.append(act('Reactivate', 'secondary', () => api('POST', `/admin/tenants/${t.tenant_id}/reactivate`)));
  if (t.status !== 'deleted') {
    actions.append(act('Delete', 'danger', async () => {
      const typed = window.prompt(`Delete the tenant “${t.name}”? Its keys stop working and its secrets are destroyed. Type its name to confirm.`);
      if (typed !== t.name) throw new Error('Not deleted: the name did not match.');
      await api('DELETE', `/admin/tenants/${t.tenant_id}`);
    }));
  }
  return h('tr', { 'data-tenant': t.tenant_id },
    h('td', {}, t.name), h('td', {}, h('code', {}, t.tenant_id)), h('td', {}, t.plan),
    h('td', {}, badge(t.status)), h('td', { class: 'wide' }, time(t.created_at)), h('td', {}, actions));
}

/** The limits a tenant can override, with their labels. */
const LIMITS = [
  ['max_api_keys', 'Most API keys'],
  ['max_sub_accounts', 'Most sub-accounts'],
  ['monthly_token_quota', 'LLM tokens per month'],
  ['requests_per_minute', 'Control-API requests per minute'],
];

/** Name, plan and limit overrides of a tenant (super admin), each limit beside the one
 * enforced now. @param {HTMLElement} view @param {any} ctx @param {string} tenantId */
async function tenantSettings(view, ctx, tenantId) {
  const out = h('div');
  const form = h('form', { class: 'settings', 'aria-label': 'Tenant settings' });
  view.append(h('h2', {}, 'Settings'), form, out);
  const fill = (/** @type {any} */ t) => {
    const name = h('input', { name: 'name', value: t.name, required: true, maxlength: 128 });
    const plan = h('select', { name: 'plan' }, ...['free', 'pro', 'enterprise'].map((p) => h('option', { value: p, selected: p === t.plan }, p)));
    const inputs = LIMITS.map(([field, label]) => {
      const enforced = t.limits?.[field];
      const input = h('input', { name: field, type: 'number', min: 1, step: 1, inputmode: 'numeric',
        value: t.limit_overrides?.[field] ?? '', placeholder: 'plan default' });
      return [field, input, h('label', {}, `${label} (override)`, input,
        h('span', { class: 'hint', 'data-testid': `enforced-${field}` }, `enforced now: ${enforced == null ? 'unlimited' : num(enforced)}`))];
    });
    form.replaceChildren(h('label', {}, 'Tenant name', name), h('label', {}, 'Plan', plan),
      ...inputs.map(([, , label]) => label),
      h('p', { class: 'hint' }, `Region: ${t.region} (chosen at creation). A plan change keeps the overrides.`),
      h('button', { type: 'submit' }, 'Save settings'));
    form.onsubmit = async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      out.replaceChildren();
      /** @type {Record<string, number>} */
      const limits = {};
      for (const [field, input] of inputs) if (input.value !== '') limits[field] = Number(input.value);
      const body = { name: name.value, plan: plan.value, ...(Object.keys(limits).length ? { limits } : {}) };
      try {
        fill(await api('PATCH', `/admin/tenants/${tenantId}`, { body }));
        ctx.toast('Settings saved');
      } catch (e) { out.replaceChildren(errorBox(e)); }
    };
  };
  try { fill(await api('GET', `/admin/tenants/${tenantId}`)); } catch (e) { out.replaceChildren(errorBox(e)); }
}

// ---- One tenant: overview and keys ---------------------------------------------------------

/** The tenant page's tabs: id (its deep link `#/tenant/<id>/<tab>`), label, the permission
 * that shows it. */
const TENANT_TABS = [
  ['keys', 'Keys', 'keys'], ['sub-accounts', 'Sub-accounts', 'keys'], ['roles', 'Roles', 'keys'],
  ['secrets', 'Secrets', 'keys'], ['configuration', 'Configuration', 'keys'], ['webhooks', 'Webhooks', 'keys'],
  ['security', 'Security', 'keys'], ['members', 'Members', 'keys'], ['settings', 'Settings', 'tenants'],
];

/** One tenant: its overview cards, then the tab asked for (the first the person may see when
 * none is). @param {HTMLElement} view @param {any} ctx @param {string} tenantId @param {string} [tab] */
export async function tenant(view, ctx, tenantId, tab) {
  const tenantHeader = ctx.platform ? tenantId : undefined;
  const overview = h('div', { class: 'grid' });
  const tabs = TENANT_TABS.filter(([, , what]) => ctx.may(what));
  const current = tabs.find(([id]) => id === tab)?.[0] ?? tabs[0]?.[0];
  const panel = h('div', { id: 'tab-panel' });
  const tabNav = tabs.length === 0 ? null : h('nav', { class: 'tabs', 'aria-label': 'Tenant sections' },
    ...tabs.map(([id, label]) => h('a', { href: `#/tenant/${tenantId}/${id}`, 'aria-current': id === current ? 'page' : undefined }, label)));
  page(view, 'Tenant', overview, tabNav, panel);
  try {
    const info = await api('GET', '/tenant/info', { tenant: tenantHeader });
    document.querySelector('h1').textContent = info.name ?? 'Tenant';
    const card = (label, value, ...more) => h('div', { class: 'card' }, h('div', {}, label), h('div', { class: 'value' }, value), ...more);
    const quota = info.limits?.monthly_token_quota;
    let usageCard = null;
    if (ctx.may('usage')) {
      const link = h('a', { href: ctx.platform ? `#/usage/${tenantId}` : '#/usage' }, 'Usage this month');
      try {
        const s = await api('GET', '/usage/summary', { tenant: tenantHeader });
        const used = Number(s.llm_tokens);
        const share = quota ? Math.min(100, (used / quota) * 100) : 0;
        usageCard = card('LLM tokens this month', h('span', { 'data-testid': 'quota-use' },
          quota ? `${num(used)} of ${num(quota)} (${share.toFixed(1)} %)` : `${num(used)} (no monthly quota)`),
        quota ? h('meter', { min: 0, max: quota, value: Math.min(used, quota), high: quota * 0.8, 'aria-label': 'Share of the monthly token quota used' }) : null, h('div', {}, link));
      } catch (e) { usageCard = card('Usage', link); }
    }
    const keysLimit = info.limits?.max_api_keys ? `${num(info.limits.max_api_keys)} keys` : 'unlimited keys';
    overview.replaceChildren(card('Plan', info.plan ?? '—'), card('Status', info.status ?? '—'),
      card('Tenant id', h('code', {}, info.id ?? tenantId)),
      card('Limits', `${num(info.limits?.requests_per_minute)} requests/min · ${keysLimit}`),
      usageCard ?? '');
  } catch (e) { overview.replaceChildren(errorBox(e)); }
  // Busy until the tab has loaded (assistive technology is told; tests wait for it).
  panel.setAttribute('aria-busy', 'true');
  panel.append(h('p', { class: 'hint', 'data-testid': 'tab-loading' }, 'Loading…'));
  const loading = panel.lastElementChild;
  try {
    await tenantTab(panel, ctx, tenantId, tenantHeader, current);
  } finally {
    loading?.remove();
    panel.removeAttribute('aria-busy');
  }
}

/** @param {HTMLElement} panel @param {any} ctx @param {string} tenantId
 * @param {string | undefined} tenantHeader @param {string | undefined} current */
async function tenantTab(panel, ctx, tenantId, tenantHeader, current) {
  switch (current) {
    case 'keys': await keysTab(panel, ctx, tenantHeader); break;
    case 'sub-accounts': await subAccounts(panel, ctx, tenantHeader); break;
    case 'roles': await roles(panel, ctx, tenantHeader); break;
    case 'secrets': await secrets(panel, ctx, tenantHeader); break;
    case 'configuration': await configuration(panel, ctx, tenantHeader); break;
    case 'webhooks': await webhooks(panel, ctx, tenantHeader); break;
    case 'security':
      await ipAllowlist(panel, ctx, tenantHeader);
      await twoFactorPolicy(panel, ctx, tenantHeader);
      break;
    case 'members': await members(panel, ctx, tenantHeader); break;
    case 'settings': await tenantSettings(panel, ctx, tenantId); break;
    default: break;
  }
}

/** Tags typed as `a=b, c=d` (a value may hold `=`). @param {string} text */
function parseTags(text) {
  /** @type {Record<string, string>} */
  const tags = {};
  for (const pair of text.split(',').map((t) => t.trim()).filter(Boolean)) {
    const [k, ...v] = pair.split('=');
    tags[k.trim()] = v.join('=').trim();
  }
  return tags;
}

/** Tags as they are typed (`a=b, c=d`). @param {Record<string, string> | null | undefined} tags */
const tagsText = (tags) => Object.entries(tags ?? {}).map(([a, b]) => `${a}=${b}`).join(', ');

/** Keys issued or rotated in this browser tab, kept in memory only (gone when the page is
 * reloaded), so that verify can be tried on them from the keys tab. */
const secretsShown = new Map();

/** A tenant's keys: issue (with tags and limits), rotate, disable, revoke, try verify; live.
 * @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenantHeader */
/** The orders of the key list (the API's `sort`). */
const KEY_SORTS = [['created', 'oldest first'], ['newest', 'newest first'], ['name', 'name'], ['last_used', 'last used'], ['expires', 'expiry']];
/** A key's public id (16 base62 characters). */
const PUBLIC_ID = /^[0-9A-Za-z]{16}$/;

async function keysTab(view, ctx, tenantHeader) {
  const keys = h('div');
  const issued = h('div');
  const name = h('input', { name: 'name', maxlength: 128 });
  const tags = h('input', { name: 'tags', placeholder: 'team=search, env=prod' });
  const models = h('input', { name: 'allowed_models', placeholder: 'gpt-4o, claude-3-5-sonnet' });
  const ips = h('input', { name: 'allowed_ips', placeholder: '203.0.113.0/24, 2001:db8::/32' });
  const quota = h('input', { name: 'quota_limit', type: 'number', min: 1, step: 1, placeholder: 'unlimited' });
  const period = h('select', { name: 'quota_period' }, h('option', { value: '' }, 'lifetime'), h('option', { value: 'day' }, 'per day'), h('option', { value: 'month' }, 'per month'));
  const expiry = h('input', { name: 'expiration', type: 'datetime-local' });
  /** @param {string} text */
  const items = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);
  const form = /** @type {HTMLFormElement} */ (h('form', { 'aria-label': 'Issue a key' }, h('label', {}, 'Key name', name), h('label', {}, 'Tags', tags),
    h('details', { class: 'options' }, h('summary', {}, 'Limits: models, networks, quota, expiry'),
      h('label', {}, 'Allowed models', models), h('label', {}, 'Allowed networks', ips),
      h('label', {}, 'LLM-token quota', quota), h('label', {}, 'Quota window', period), h('label', {}, 'Expires (your time)', expiry)),
    h('button', { type: 'submit' }, 'Issue key')));
  const verdict = h('div', { 'aria-live': 'polite' });
  /** @param {any} k */
  async function tryVerify(k) {
    try {
      const v = await api('POST', '/v1/keys/verify', { body: { key: secretsShown.get(k.public_id) } });
      verdict.replaceChildren(h('div', { class: v.valid ? 'notice' : 'notice error', 'data-testid': 'verify-verdict' },
        v.valid ? `POST /v1/keys/verify accepts ${k.public_id}.` : `POST /v1/keys/verify refuses ${k.public_id}: ${v.code}.`));
    } catch (e) { verdict.replaceChildren(errorBox(e)); }
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    /** @type {Record<string, unknown>} */
    const body = { name: name.value || undefined, tags: parseTags(tags.value) };
    if (models.value.trim()) body.allowed_models = items(models.value);
    if (ips.value.trim()) body.allowed_ips = items(ips.value);
    if (quota.value) { body.quota_limit = Number(quota.value); if (period.value) body.quota_period = period.value; }
    if (expiry.value) body.expiration = new Date(expiry.value).toISOString();
    try {
      const k = await api('POST', '/tenant/api-keys', { tenant: tenantHeader, body });
      secretsShown.set(k.public_id, k.api_key);
      pinned.add(k.public_id);
      issued.replaceChildren(shownOnce(`Key ${k.public_id}`, k.api_key));
      form.reset();
      await load();
    } catch (e) { issued.replaceChildren(errorBox(e)); }
  });

  // Keys issued on this visit stay on top of the list (the list is oldest first, so at
  // thousands of keys a new one would be pages away).
  /** @type {Set<string>} */
  const pinned = new Set();
  // The list's filters and orders are the API's (name search, status, tag, sort); "Find" also
  // opens one key by its id or by the whole key pasted (its public id is the part after `thk_`).
  const find = h('input', { name: 'find', 'aria-label': 'Find a key', placeholder: 'name, key id or thk_… key', autocomplete: 'off', maxlength: 100 });
  const statusFilter = h('select', { name: 'status', 'aria-label': 'Key status' }, ...['', 'active', 'disabled', 'revoked'].map((v) => h('option', { value: v }, v || 'any status')));
  const tagFilter = h('input', { name: 'tag', 'aria-label': 'Tag', placeholder: 'team=search' });
  const sort = h('select', { name: 'sort', 'aria-label': 'Order' }, ...KEY_SORTS.map(([v, label]) => h('option', { value: v }, label)));
  const filters = h('form', { class: 'filters', 'aria-label': 'Key filters' },
    h('label', {}, 'Find', find), h('label', {}, 'Status', statusFilter), h('label', {}, 'Tag', tagFilter),
    h('label', {}, 'Order', sort), h('button', { type: 'submit' }, 'Show keys'));
  sort.addEventListener('change', () => { wanted = 100; load().catch((e) => keys.replaceChildren(errorBox(e))); });
  const detail = h('div');
  // What the list searches names for (a key id or a pasted key opens that key instead).
  let nameSearch = '';
  filters.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const wantedKey = find.value.trim();
    nameSearch = '';
    if (wantedKey.startsWith('thk_')) {
      const id = wantedKey.split('_')[1] ?? '';
      find.value = id; // a pasted key's secret part is not kept on the page
      await showKey(id);
    } else if (PUBLIC_ID.test(wantedKey)) {
      // Looks like a key id: open that key; if there is none, it is a name searched for.
      if (!(await showKey(wantedKey, true))) nameSearch = wantedKey;
    } else {
      nameSearch = wantedKey;
      if (!wantedKey) detail.replaceChildren();
    }
    wanted = 100;
    try { await load(); } catch (e) { keys.replaceChildren(errorBox(e)); }
  });

  /** One key: its settings, its usage this month, its history, and an edit of name and tags.
   * @param {string} publicId @param {boolean} [quietIfMissing] say nothing when there is no such key
   * @returns {Promise<boolean>} whether the key was found */
  async function showKey(publicId, quietIfMissing = false) {
    detail.replaceChildren(h('p', { class: 'hint' }, 'Loading the key…'));
    try {
      const k = await api('GET', `/tenant/api-keys/${encodeURIComponent(publicId)}`, { tenant: tenantHeader });
      const [usage, history] = await Promise.all([
        ctx.may('usage') ? api('GET', `/usage/summary?key=${k.public_id}`, { tenant: tenantHeader }).catch(() => null) : null,
        api('GET', `/tenant/audit/events?aggregate_id=${k.public_id}&order=desc&limit=20`, { tenant: tenantHeader }).catch(() => null),
      ]);
      const tagText = tagsText(k.tags);
      const editName = h('input', { name: 'name', value: k.name ?? '', maxlength: 128 });
      const editTags = h('input', { name: 'tags', value: tagText });
      const saved = h('div', { 'aria-live': 'polite' });
      const edit = h('form', { class: 'filters', 'aria-label': 'Edit the key' },
        h('label', {}, 'New name', editName), h('label', {}, 'New tags', editTags), h('button', { type: 'submit' }, 'Save key'));
      edit.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
          await api('PATCH', `/tenant/api-keys/${k.public_id}`, { tenant: tenantHeader, body: { name: editName.value, tags: parseTags(editTags.value) } });
          ctx.toast(`${editName.value || k.public_id} saved`);
          await Promise.all([showKey(k.public_id), load()]);
        } catch (e) { saved.replaceChildren(errorBox(e)); }
      });
      const fact = (/** @type {string} */ label, /** @type {Node | string} */ value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
      const quota = k.quota_limit ? `${num(k.quota_limit)} LLM tokens${k.quota_period ? ` per ${k.quota_period}` : ' (lifetime)'}` : 'none';
      const events = history?.data ?? [];
      detail.replaceChildren(h('section', { class: 'notice', 'data-testid': 'key-detail', 'aria-label': `Key ${k.name ?? k.public_id}` },
        h('h3', {}, k.name ?? k.public_id, ' ', badge(k.status)),
        h('dl', { class: 'facts' }, fact('Id', h('code', {}, k.public_id)), fact('Created', time(k.created_at)), fact('Last used', time(k.last_used_at)),
          fact('Expires', time(k.expiration)), fact('Tags', tagText || '—'), fact('Models', (k.allowed_models ?? []).join(', ') || 'any'),
          fact('Networks', (k.allowed_ips ?? []).join(', ') || 'any'), fact('Quota', quota),
          usage ? fact('This month', h('span', { 'data-testid': 'key-usage' }, `${num(usage.llm_tokens)} LLM tokens, ${num(usage.api_calls)} calls`)) : null),
        edit, saved,
        h('h4', {}, 'History'),
        table(['Time', 'Event', 'By'], events.map((/** @type {any} */ e) => h('tr', { 'data-event': e.event_type },
          h('td', {}, time(e.time)), h('td', {}, h('code', {}, e.event_type)), h('td', {}, e.actor?.email ?? e.actor?.id ?? '—'))), 'No history.'),
        history?.next_cursor ? h('p', { class: 'hint' }, 'The 20 newest; the Audit page has the rest.') : null));
      return true;
    } catch (e) {
      const missing = e instanceof ApiError && e.status === 404;
      if (missing && quietIfMissing) detail.replaceChildren();
      else detail.replaceChildren(missing ? h('div', { class: 'notice error', role: 'alert' }, `No key ${publicId} in this tenant.`) : errorBox(e));
      return false;
    }
  }

  // Pages of 100, as many as the person asked to see ("More keys"); a refresh keeps them.
  let wanted = 100;
  const more = h('button', { type: 'button', class: 'secondary', 'data-testid': 'more-keys', hidden: true }, 'More keys');
  more.addEventListener('click', () => { wanted += 100; load().catch((e) => keys.replaceChildren(errorBox(e))); });
  const turn = newestOnly();
  async function load() {
    const newest = turn();
    /** @type {any[]} */
    const all = [];
    let cursor = null;
    do {
      const q = new URLSearchParams({ limit: '100' });
      if (sort.value !== 'created') q.set('sort', sort.value);
      if (nameSearch) q.set('q', nameSearch);
      if (statusFilter.value) q.set('status', statusFilter.value);
      if (tagFilter.value.trim()) q.set('tag', tagFilter.value.trim());
      if (cursor) q.set('cursor', cursor);
      const data = await api('GET', `/tenant/api-keys?${q}`, { tenant: tenantHeader });
      all.push(...data.data);
      cursor = data.next_cursor ?? null;
    } while (cursor && all.length < wanted);
    const filtered = Boolean(statusFilter.value || tagFilter.value.trim() || nameSearch);
    const top = filtered ? [] : await Promise.all([...pinned].map((id) => api('GET', `/tenant/api-keys/${id}`, { tenant: tenantHeader }).catch(() => null)));
    if (!newest()) return;
    const shown = [...top.filter(Boolean), ...all.filter((k) => filtered || !pinned.has(k.public_id))];
    const rows = shown.map((k) => {
      const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!window.confirm(`Revoke the key ${k.name ?? k.public_id}? It stops working at once, everywhere.`)) return;
        try { await api('DELETE', `/tenant/api-keys/${k.public_id}`, { tenant: tenantHeader }); await load(); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      const rotate = h('button', { type: 'button', class: 'secondary' }, 'Rotate');
      rotate.addEventListener('click', async () => {
        const answer = window.prompt(`Rotate ${k.name ?? k.public_id}: how long may the old key still work? (e.g. 0, 90s, 30m, 24h, 7d)`, '1h');
        if (answer === null) return;
        const grace = parseDuration(answer);
        if (grace === null) { ctx.toast(`"${answer}" is not a duration: a number with s, m, h or d (e.g. 24h)`); return; }
        const until = grace === 0 ? 'stops working at once' : `keeps working for ${describeDuration(grace)} (until ${new Date(Date.now() + grace * 1000).toLocaleString()})`;
        if (!window.confirm(`Rotate ${k.name ?? k.public_id}? The old key ${until}.`)) return;
        try {
          const r = await api('POST', `/tenant/api-keys/${k.public_id}/rotate`, { tenant: tenantHeader, body: { grace_period_seconds: grace } });
          issued.replaceChildren(shownOnce(`New key for ${k.name ?? k.public_id}`, r.api_key));
          await load();
        } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      const toggle = h('button', { type: 'button', class: 'secondary' }, k.status === 'disabled' ? 'Enable' : 'Disable');
      toggle.addEventListener('click', async () => {
        const action = k.status === 'disabled' ? 'enable' : 'disable';
        try { await api('POST', `/tenant/api-keys/${k.public_id}/${action}`, { tenant: tenantHeader }); await load(); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      const check = secretsShown.has(k.public_id) && ctx.may('verify')
        ? h('button', { type: 'button', class: 'secondary', onclick: () => tryVerify(k) }, 'Try verify') : null;
      const tagText = tagsText(k.tags);
      const open = h('button', { type: 'button', class: 'link', onclick: () => showKey(k.public_id), 'aria-label': `Details of ${k.name ?? k.public_id}` }, k.name ?? '—');
      return h('tr', { 'data-key': k.public_id, class: pinned.has(k.public_id) && !filtered ? 'pinned' : undefined },
        h('td', {}, open), h('td', {}, idTag(k.public_id)), h('td', { 'data-testid': 'key-status' }, badge(k.status)),
        h('td', {}, tagText || '—'), h('td', { class: 'wide' }, time(k.last_used_at)), h('td', { class: 'wide' }, time(k.expiration)),
        h('td', {}, h('div', { class: 'actions' }, ...(k.status === 'revoked' ? [] : [rotate, toggle, revoke]), check)));
    });
    more.hidden = !cursor;
    keys.replaceChildren(table(['Name', 'Id', 'Status', 'Tags', 'Last used', 'Expires', ''], rows,
      filtered ? 'No key matches these filters.' : 'No keys yet. Issue one above.'),
    cursor ? h('p', { class: 'empty' }, `The first ${all.length}; more below.`) : '');
  }
  view.append(h('h2', {}, 'Keys'), form, issued, verdict, filters, detail, keys, more);
  try { await load(); } catch (e) { keys.replaceChildren(errorBox(e)); }
  ctx.onLive('/tenant/audit/events/stream', tenantHeader, (item) => { if (item.aggregate_type === 'api_key') load(); });
}

/**
 * Seconds in a duration typed with a unit (`90s`, `30m`, `24h`, `7d`; a bare number is
 * seconds); `null` when it is not one.
 * @param {string} text
 */
export function parseDuration(text) {
  const m = /^\s*(\d{1,7})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?\s*$/i.exec(text);
  if (!m) return null;
  const unit = (m[2] ?? 's').toLowerCase()[0];
  const seconds = Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86400 })[unit];
  return Number.isSafeInteger(seconds) && seconds <= 365 * 86400 ? seconds : null;
}

/** @param {number} seconds */
function describeDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} day(s)`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour(s)`;
  if (seconds % 60 === 0) return `${seconds / 60} minute(s)`;
  return `${seconds} second(s)`;
}

// ---- Audit ---------------------------------------------------------------------------------

/** @param {HTMLElement} view @param {any} ctx */
export async function audit(view, ctx) {
  const platform = ctx.may('audit-all');
  const path = platform ? '/audit/events' : '/tenant/audit/events';
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  /** @param {string} name @param {string} placeholder */
  const field = (name, placeholder, type = 'text') => h('input', { name, type, value: params.get(name) ?? '', placeholder });
  const tenantId = field('tenant_id', 'ten_…');
  const aggregateType = h('select', { name: 'aggregate_type' }, ...['', 'tenant', 'api_key', 'sub_account', 'role', 'secret', 'user']
    .map((t) => h('option', { value: t, selected: t === (params.get('aggregate_type') ?? '') }, t || 'any aggregate')));
  const aggregateId = field('aggregate_id', 'id');
  const eventType = field('event_type', 'api_key.revoked');
  eventType.setAttribute('list', 'audit-event-types');
  const actor = field('actor_id', 'usr_… or master');
  const actorEmail = field('actor_email', 'ada@example.com', 'email');
  const from = field('from', '', 'datetime-local');
  const to = field('to', '', 'datetime-local');
  const inputs = { tenant_id: tenantId, aggregate_type: aggregateType, aggregate_id: aggregateId, event_type: eventType, actor_id: actor, actor_email: actorEmail, from, to };
  // Tenants are chosen by name (the list offers each tenant's name beside its id).
  const tenantNames = h('datalist', { id: 'audit-tenants' });
  tenantId.setAttribute('list', 'audit-tenants');
  const filters = h('form', { 'aria-label': 'Filter events', class: 'filters' },
    platform ? h('label', {}, 'Tenant', tenantId) : null, platform ? tenantNames : null,
    h('label', {}, 'Aggregate', aggregateType), h('label', {}, 'Aggregate id', aggregateId),
    h('label', {}, 'Event type', eventType), h('datalist', { id: 'audit-event-types' }, ...AUDIT_EVENT_TYPES.map((t) => h('option', { value: t }))),
    h('label', {}, 'Actor e-mail', actorEmail), h('label', {}, 'Actor id', actor), h('label', {}, 'From (your time)', from), h('label', {}, 'To', to),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  if (platform) {
    api('GET', '/admin/tenants?limit=200').then((t) => {
      tenantNames.replaceChildren(...t.data.map((/** @type {any} */ x) => h('option', { value: x.tenant_id }, x.name)));
    }).catch(() => {});
  }
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, input] of Object.entries(inputs)) if (input.value) next.set(k, input.value);
    ctx.navigate(`#/audit?${next}`);
  });
  // A key's or tenant's state as of a chosen moment, rebuilt by the server from the log.
  const asOfKind = h('select', { name: 'as_of_type', 'aria-label': 'Kind' }, h('option', { value: 'api_key' }, 'key'), h('option', { value: 'tenant' }, 'tenant'));
  const asOfId = h('input', { name: 'as_of_id', required: true, placeholder: 'key public id or ten_…', 'aria-label': 'Key or tenant id' });
  const asOfAt = h('input', { name: 'as_of', type: 'datetime-local', step: 1, required: true, 'aria-label': 'As of (your time)' });
  const asOfOut = h('div');
  const asOf = h('form', { 'aria-label': 'State as of a moment' }, asOfKind, asOfId, asOfAt, h('button', { type: 'submit', class: 'secondary' }, 'Show state'));
  asOf.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const at = new Date(asOfAt.value).toISOString();
    const query = new URLSearchParams({ aggregate_type: asOfKind.value, aggregate_id: asOfId.value.trim(), as_of: at });
    try {
      const past = await api('GET', `${platform ? '/audit/state' : '/tenant/audit/state'}?${query}`);
      asOfOut.replaceChildren(h('div', { class: 'notice', 'data-testid': 'as-of-state' },
        h('strong', {}, `${asOfId.value.trim()} as of `, time(at)), h('pre', { class: 'mono' }, JSON.stringify(past.state, null, 2))));
    } catch (e) { asOfOut.replaceChildren(errorBox(e)); }
  });
  const chain = h('p', { class: 'empty' });
  const list = h('div');
  const tbody = h('tbody');
  const detail = h('div');
  const show = (e) => {
    detail.replaceChildren(h('div', { class: 'notice', 'data-testid': 'event-detail' },
      h('strong', {}, `${e.event_type} · position ${e.position}`),
      h('p', {}, 'By ', e.actor.email ?? e.actor.id, ` (${e.actor.kind})`, ' from ', e.source_ip ?? '—', ', request ', h('code', {}, e.request_id ?? '—')),
      h('pre', { class: 'mono' }, JSON.stringify(e.payload, null, 2))));
    detail.scrollIntoView({ block: 'nearest' });
  };
  // The current names of the ids on the pages read so far (the server sends them with each page).
  /** @type {Record<string, string>} */
  const names = {};
  /** An id with its name beside it, when it has one. @param {string} id */
  const named = (id) => names[id] ? h('span', {}, names[id], ' ', idTag(id)) : h('code', {}, id);
  const headers = ['Time', 'Event', ...(platform ? ['Tenant'] : []), 'Aggregate', 'Actor', 'Address', 'User agent'];
  const row = (e) => labelled(h('tr', { 'data-event': e.event_type, 'data-position': String(e.position) },
    h('td', {}, time(e.time)), h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => show(e), 'aria-label': `Details of ${e.event_type} at position ${e.position}` }, e.event_type)),
    platform ? h('td', { 'data-testid': 'tenant' }, e.tenant_id ? named(e.tenant_id) : '—') : null,
    h('td', { class: 'wide', 'data-testid': 'aggregate' }, named(e.aggregate_id)),
    h('td', { 'data-testid': 'actor' }, e.actor.email ?? (names[e.actor.id] ? named(e.actor.id) : e.actor.id)), h('td', { class: 'wide' }, e.source_ip ?? '—'),
    h('td', { class: 'wide' }, e.user_agent ?? '—')), headers);
  // Newest first, a page at a time: "Older events" reads the next page from the cursor.
  const query = new URLSearchParams({ limit: '100', order: 'desc' });
  for (const [k, input] of Object.entries(inputs)) {
    if (!input.value || (k === 'tenant_id' && !platform)) continue;
    query.set(k, k === 'from' || k === 'to' ? new Date(input.value).toISOString() : input.value);
  }
  const exportQuery = new URLSearchParams(query);
  exportQuery.delete('limit');
  exportQuery.delete('order');
  const exporter = platform ? h('p', {}, h('a', { href: `/audit/events/export?${exportQuery}`, download: 'audit.ndjson' }, 'Export these events (NDJSON)')) : null;
  const older = h('button', { type: 'button', class: 'secondary', 'data-testid': 'older-events', hidden: true }, 'Older events');
  page(view, 'Audit log', filters, chain, exporter, h('h2', {}, 'State as of a moment'), asOf, asOfOut, h('h2', {}, 'Events'), detail, list, older);
  /** @param {string | null} cursor */
  const load = async (cursor) => {
    const q = new URLSearchParams(query);
    if (cursor) q.set('cursor', cursor);
    const data = await api('GET', `${path}?${q}`, {});
    Object.assign(names, data.names ?? {});
    tbody.append(...data.data.map(row));
    older.hidden = data.next_cursor == null;
    older.onclick = () => { load(String(data.next_cursor)).catch((e) => list.append(errorBox(e))); };
    return data.data.length;
  };
  try {
    const shown = await load(null);
    list.replaceChildren(shown === 0 ? h('p', { class: 'empty' }, 'No events match these filters.') :
      h('div', { class: 'table-wrap' }, h('table', { class: 'cards' }, h('thead', {}, h('tr', {}, ...headers.map((c) => h('th', { scope: 'col' }, c)))), tbody)));
  } catch (e) { list.replaceChildren(errorBox(e)); }
  if (platform) {
    api('GET', '/audit/verify').then((r) => { chain.textContent = r.ok ? `Hash chain verified: ${num(r.checked)} events intact.` : `Hash chain broken at position ${r.first_break?.position ?? '?'}.`; }).catch(() => {});
  }
  ctx.onLive(platform ? '/audit/events/stream' : '/tenant/audit/events/stream', undefined, (e) => {
    if ((eventType.value && e.event_type !== eventType.value) || (actor.value && e.actor.id !== actor.value)) return;
    if (actorEmail.value && (e.actor.email ?? '').toLowerCase() !== actorEmail.value.toLowerCase()) return;
    if ((aggregateType.value && e.aggregate_type !== aggregateType.value) || (aggregateId.value && e.aggregate_id !== aggregateId.value)) return;
    if (platform && tenantId.value && e.tenant_id !== tenantId.value) return;
    if (to.value) return; // a closed time range gets no live additions
    tbody.prepend(row(e));
  });
}

// ---- Usage ---------------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

/** An id shown beside a name: shortened (whole in its tooltip), with a button that copies it.
 * @param {string} id */
function idTag(id) {
  const copy = h('button', { type: 'button', class: 'copy', 'aria-label': `Copy ${id}`, title: 'Copy the id' }, 'copy');
  copy.addEventListener('click', async (ev) => {
    ev.preventDefault();
    ev.stopPropagation();
    try { await navigator.clipboard.writeText(id); copy.textContent = 'copied'; } catch { copy.textContent = 'select it'; }
    setTimeout(() => { copy.textContent = 'copy'; }, 1500);
  });
  return h('span', { class: 'idtag' }, h('code', { class: 'id', title: id }, id.length > 16 ? `${id.slice(0, 12)}…` : id), copy);
}

/** The smallest 1, 2 or 5 × 10^k at or above `n` (the chart's top). @param {number} n */
function niceCeiling(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((f) => f * power).find((v) => v >= n) ?? 10 * power;
}

/** A daily bar chart, drawn as SVG through the DOM (no inline style, no library): a y-axis in
 * `unit` with gridlines, the dates below, and today's bar marked as partial.
 * @param {string} title @param {string} unit @param {{ date: string, value: number }[]} days @param {string} testid */
function barChart(title, unit, days, testid) {
  const width = 720, height = 180, left = 64, bottom = 34, top = 10;
  const max = niceCeiling(Math.max(1, ...days.map((d) => d.value)));
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height + bottom + top}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${title} by day, in ${unit}; the scale goes to ${num(max)}`);
  svg.setAttribute('class', 'chart');
  /** @param {string} name @param {Record<string, string | number>} attrs @param {string} [text] */
  const el = (name, attrs, text) => {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const y = (/** @type {number} */ v) => top + height - (v / max) * height;
  for (const tick of [0, max / 4, max / 2, (3 * max) / 4, max]) {
    el('line', { x1: left, x2: width, y1: y(tick), y2: y(tick), class: 'grid' });
    el('text', { x: left - 6, y: y(tick) + 4, 'text-anchor': 'end', class: 'tick' }, num(Math.round(tick)));
  }
  el('text', { x: 12, y: top + height / 2, class: 'tick', transform: `rotate(-90 12 ${top + height / 2})`, 'text-anchor': 'middle' }, unit);
  const today = new Date().toISOString().slice(0, 10);
  const step = (width - left) / Math.max(days.length, 1);
  const labelEvery = Math.ceil(days.length / 12);
  days.forEach((d, i) => {
    const partial = d.date === today;
    const bar = el('rect', { x: left + i * step + 1, y: y(d.value), width: Math.max(step - 2, 1), height: Math.max(top + height - y(d.value), 0), class: partial ? 'bar partial' : 'bar' });
    const tip = document.createElementNS(SVG, 'title');
    tip.textContent = `${d.date}: ${num(d.value)} ${unit}${partial ? ' (today, so far)' : ''}`;
    bar.append(tip);
    if (i % labelEvery === 0 || i === days.length - 1) {
      el('text', { x: left + i * step + step / 2, y: top + height + 16, 'text-anchor': 'middle', class: 'tick' }, d.date.slice(5));
    }
    if (partial) el('text', { x: left + i * step + step / 2, y: top + height + 30, 'text-anchor': 'middle', class: 'tick' }, 'today');
  });
  const total = days.reduce((sum, d) => sum + d.value, 0);
  return h('figure', {}, h('figcaption', {}, `${title}: `, h('strong', { 'data-testid': testid }, num(total)),
    days.some((d) => d.date === today) ? h('span', { class: 'hint' }, ' (today is partial, its bar outlined)') : ''), svg);
}

/** The days of `period` (YYYY-MM, last-7-days or last-30-days, UTC), oldest first. @param {string} period */
function datesOf(period) {
  const rolling = period.match(/^last-(\d+)-days$/);
  if (rolling) {
    const n = Number(rolling[1]);
    const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    return Array.from({ length: n }, (_, i) => new Date(today - (n - 1 - i) * 86400_000).toISOString().slice(0, 10));
  }
  const [y, m] = period.split('-').map(Number);
  const count = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return Array.from({ length: count }, (_, i) => `${period}-${String(i + 1).padStart(2, '0')}`);
}

/** Every day of `period`, with the history's values or 0. @param {string} period @param {any[]} history @param {string} field */
function daysOf(period, history, field) {
  const byDate = new Map(history.map((d) => [d.date, d[field]]));
  return datesOf(period).map((date) => ({ date, value: Number(byDate.get(date) ?? 0) }));
}

/** The periods offered: the last 7 and 30 days, then this month and the eleven before it. */
function usagePeriods() {
  const now = new Date();
  const months = Array.from({ length: 12 }, (_, i) => {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1));
    const value = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    return [value, i === 0 ? `this month (${value})` : value];
  });
  return [['last-7-days', 'last 7 days'], ['last-30-days', 'last 30 days'], ...months];
}

/** A period as a heading says it. @param {string} period */
function periodName(period) {
  return usagePeriods().find(([v]) => v === period)?.[1] ?? period;
}

/** Every page of `path` (a listing with `next_cursor`), as the list of its pages.
 * @param {string} path */
async function everyPage(path) {
  /** @type {any[]} */
  const pages = [];
  let cursor = null;
  do {
    const data = await api('GET', `${path}${path.includes('?') ? '&' : '?'}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    pages.push(data);
    cursor = data.next_cursor ?? null;
  } while (cursor);
  return pages;
}

/** Text as one CSV field. @param {unknown} v */
const csvField = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replaceAll('"', '""')}"` : String(v));

/** Every tenant's usage in a period: a table that sorts by any column, with totals, the share
 * of each tenant's monthly quota (calendar months) and a CSV download.
 * @param {HTMLElement} list @param {string} period */
async function allTenantsUsage(list, period) {
  const pages = await everyPage(`/admin/usage?period=${period}`);
  const month = /^\d{4}-\d{2}$/.test(period);
  const rows = pages.flatMap((p) => p.tenants.map((/** @type {any} */ u) => {
    const quota = month ? p.monthly_token_quotas?.[u.tenant_id] ?? null : null;
    return { id: u.tenant_id, name: p.names?.[u.tenant_id] ?? u.tenant_id, llm_tokens: u.llm_tokens, api_calls: u.api_calls, records: u.records, quota,
      used: quota ? (100 * u.llm_tokens) / quota : null };
  }));
  const columns = [['name', 'Tenant'], ['llm_tokens', 'LLM tokens'], ['api_calls', 'API calls'], ['records', 'Records'], ['quota', 'Monthly quota'], ['used', 'Quota used']];
  let sortBy = 'llm_tokens', descending = true;
  const totals = rows.reduce((t, r) => ({ llm_tokens: t.llm_tokens + r.llm_tokens, api_calls: t.api_calls + r.api_calls, records: t.records + r.records }), { llm_tokens: 0, api_calls: 0, records: 0 });
  const csv = [columns.map(([, label]) => label).concat('Tenant id').join(','),
    ...rows.map((r) => [r.name, r.llm_tokens, r.api_calls, r.records, r.quota ?? '', r.used === null ? '' : r.used.toFixed(1), r.id].map(csvField).join(','))].join('\n');
  const download = h('a', { href: URL.createObjectURL(new Blob([`${csv}\n`], { type: 'text/csv' })), download: `usage-${period}.csv`, class: 'button', 'data-testid': 'usage-csv' }, 'Download CSV');
  const draw = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[sortBy], y = b[sortBy];
      const order = typeof x === 'string' ? x.localeCompare(y) : (x ?? -1) - (y ?? -1);
      return descending ? -order : order;
    });
    const head = h('tr', {}, ...columns.map(([key, label]) => h('th', { scope: 'col', 'aria-sort': key === sortBy ? (descending ? 'descending' : 'ascending') : 'none' },
      h('button', { type: 'button', class: 'link', onclick: () => { descending = key === sortBy ? !descending : key !== 'name'; sortBy = key; draw(); } }, label))));
    const labels = columns.map(([, label]) => label);
    const body = sorted.map((r) => labelled(h('tr', { 'data-tenant': r.id },
      h('td', {}, h('a', { href: `#/usage/${r.id}?period=${period}` }, r.name), ' ', idTag(r.id)),
      h('td', { class: 'num' }, num(r.llm_tokens)), h('td', { class: 'num' }, num(r.api_calls)), h('td', { class: 'num wide' }, num(r.records)),
      h('td', { class: 'num wide' }, r.quota ? num(r.quota) : month ? 'none' : '—'), h('td', { class: 'num', 'data-testid': 'quota-used' }, r.used === null ? '—' : `${r.used.toFixed(1)} %`)), labels));
    const foot = labelled(h('tr', { 'data-testid': 'usage-totals' }, h('th', { scope: 'row' }, `All ${rows.length} tenants with usage`), h('td', { class: 'num' }, num(totals.llm_tokens)),
      h('td', { class: 'num' }, num(totals.api_calls)), h('td', { class: 'num wide' }, num(totals.records)), h('td', { class: 'wide' }), h('td', {})), ['', ...labels.slice(1, 4), '', '']);
    list.replaceChildren(rows.length === 0 ? h('p', { class: 'empty' }, 'No usage in this period.') :
      h('div', {}, download, h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'all-tenants-usage', class: 'cards' }, h('thead', {}, head), h('tbody', {}, ...body), h('tfoot', {}, foot)))));
  };
  draw();
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenantId */
export async function usage(view, ctx, tenantId) {
  const now = new Date();
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const period = params.get('period') ?? `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  const periodPicker = h('select', { name: 'period' }, ...usagePeriods().map(([v, label]) => h('option', { value: v, selected: v === period }, label)));
  if (![...periodPicker.querySelectorAll('option')].some((o) => o.value === period)) periodPicker.append(h('option', { value: period, selected: true }, period));
  if (ctx.platform && !tenantId) {
    // Finance roles: every tenant's usage in the period.
    const list = h('div');
    const choose = h('form', { 'aria-label': 'Choose a period' }, h('label', {}, 'Period', periodPicker), h('button', { type: 'submit', class: 'secondary' }, 'Show'));
    choose.addEventListener('submit', (ev) => { ev.preventDefault(); ctx.navigate(`#/usage?period=${periodPicker.value}`); });
    page(view, `Usage, ${periodName(period)}`, choose, list);
    try { await allTenantsUsage(list, period); } catch (e) { list.replaceChildren(errorBox(e)); }
    return;
  }
  const tenant = ctx.platform ? tenantId : undefined;
  const key = h('input', { name: 'key', value: params.get('key') ?? '', placeholder: 'key public id' });
  const model = h('input', { name: 'model', value: params.get('model') ?? '', placeholder: 'gpt-4o' });
  const sub = h('input', { name: 'sub_account', value: params.get('sub_account') ?? '', placeholder: 'sub-account id' });
  const filters = h('form', { 'aria-label': 'Filter usage' }, h('label', {}, 'Period', periodPicker), h('label', {}, 'Key', key),
    h('label', {}, 'Sub-account', sub), h('label', {}, 'Model', model), h('button', { type: 'submit', class: 'secondary' }, 'Show'));
  const base = ctx.platform ? `#/usage/${tenantId}` : '#/usage';
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ period: periodPicker.value || period });
    if (key.value) q.set('key', key.value);
    if (sub.value) q.set('sub_account', sub.value);
    if (model.value) q.set('model', model.value);
    ctx.navigate(`${base}?${q}`);
  });
  const summary = h('div', { class: 'grid' });
  const charts = h('div');
  const breakdowns = h('div', { class: 'breakdowns' });
  page(view, `Usage, ${periodName(period)}`, filters, summary, charts, h('h2', {}, 'Breakdown'), breakdowns);
  const q = new URLSearchParams({ period });
  for (const [name, input] of [['key', key], ['sub_account', sub], ['model', model]]) if (input.value) q.set(name, input.value);
  try {
    const [s, hist] = await Promise.all([
      api('GET', `/usage/summary?${q}`, { tenant }),
      api('GET', `/usage/history?${q}`, { tenant }),
    ]);
    const card = (label, value, testid) => h('div', { class: 'card' }, h('div', {}, label), h('div', { class: 'value', 'data-testid': testid }, num(value)));
    summary.replaceChildren(card('LLM tokens (summary)', s.llm_tokens, 'summary-llm-tokens'), card('API calls (summary)', s.api_calls, 'summary-api-calls'),
      card('Prompt tokens', s.prompt_tokens), card('Completion tokens', s.completion_tokens), card('Records', s.records));
    charts.replaceChildren(
      hist.history.length === 0 ? h('p', { class: 'empty' }, 'No usage in this period yet: gateways report it with POST /v1/usage.') : '',
      barChart('LLM tokens', 'tokens', daysOf(period, hist.history, 'llm_tokens'), 'chart-llm-tokens'),
      barChart('API calls', 'calls', daysOf(period, hist.history, 'api_calls'), 'chart-api-calls'));
  } catch (e) { charts.replaceChildren(errorBox(e)); }
  const dimensions = [['key', 'Key'], ['sub_account', 'Sub-account'], ['model', 'Model']];
  const tables = await Promise.all(dimensions.map(async ([by, column]) => {
    const title = `By ${column.toLowerCase()}`;
    try {
      const b = await api('GET', `/usage/breakdown?by=${by}&limit=20&${q}`, { tenant });
      const names = b.names ?? {};
      const rows = b.groups.map((g) => {
        const label = g.value ?? '(none)';
        const drill = new URLSearchParams(q);
        if (g.value) drill.set(by, g.value);
        const shown = g.value && names[g.value] ? h('span', {}, names[g.value], ' ', idTag(g.value)) : h('code', {}, label);
        return h('tr', { 'data-group': label },
          h('td', {}, g.value ? h('a', { href: `${base}?${drill}` }, shown) : label),
          h('td', { class: 'num' }, num(g.llm_tokens)), h('td', { class: 'num' }, num(g.api_calls)), h('td', { class: 'num wide' }, num(g.records)));
      });
      return h('section', { 'data-testid': `breakdown-${by}`, 'aria-label': title }, h('h3', {}, title),
        table([column, 'LLM tokens', 'API calls', 'Records'], rows, 'Nothing in this period.'),
        b.truncated ? h('p', { class: 'empty' }, 'The 20 largest; narrow the filters to see the rest.') : '');
    } catch (e) { return errorBox(e); }
  }));
  breakdowns.replaceChildren(...tables);
}

// ---- One tenant: members, sub-accounts, secrets ---------------------------------------------

/** A section with a create form and a list that reloads. @param {HTMLElement} view @param {string} title
 * @param {HTMLFormElement} form @param {() => Promise<Node>} list */
async function section(view, title, form, list) {
  const result = h('div');
  const body = h('div');
  const reload = async () => { try { body.replaceChildren(await list()); } catch (e) { body.replaceChildren(errorBox(e)); } };
  view.append(h('h2', {}, title), form, result, body);
  await reload();
  return { result, reload };
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function members(view, ctx, tenant) {
  const roles = ['tenant_admin', 'tenant_finance', 'tenant_viewer'];
  const email = h('input', { name: 'email', type: 'email', required: true });
  const role = h('select', { name: 'role' }, ...roles.map((r) => h('option', { value: r }, r)));
  const form = /** @type {HTMLFormElement} */ (h('form', { 'aria-label': 'Invite a member' }, h('label', {}, 'Member e-mail', email), h('label', {}, 'Role', role), h('button', { type: 'submit' }, 'Invite')));
  const list = async () => pagedTable((cursor) => api('GET', `/tenant/users?${pageQuery(cursor)}`, { tenant }), 'More members', (rows) => {
    return table(['E-mail', 'Role', 'Status', 'Two-factor', ''], rows.map((u) => {
      const change = h('select', { 'aria-label': `Role of ${u.email}` }, ...roles.map((r) => h('option', { value: r, selected: r === u.role }, r)));
      change.addEventListener('change', async () => {
        try { await api('PATCH', `/tenant/users/${u.user_id}`, { tenant, body: { role: change.value } }); ctx.toast(`${u.email} is now ${change.value}`); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      const remove = h('button', { type: 'button', class: 'danger' }, 'Remove');
      remove.addEventListener('click', async () => {
        if (!window.confirm(`Remove ${u.email}? Their sessions end at once.`)) return;
        try { await api('DELETE', `/tenant/users/${u.user_id}`, { tenant }); await s.reload(); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      const active = u.status !== 'disabled';
      return h('tr', { 'data-user': u.email }, h('td', {}, u.email), h('td', {}, active ? change : u.role), h('td', {}, badge(u.status)),
        h('td', {}, u.totp_enrolled ? 'on' : 'off'), h('td', {}, active ? remove : ''));
    }), 'No members yet. Invite one above.');
  });
  const s = await section(view, 'Members', form, list);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const invite = await api('POST', '/tenant/users', { tenant, body: { email: email.value, role: role.value } });
      s.result.replaceChildren(shownOnce(`Invite link for ${email.value} (72 hours, single use)`, invite.invite_url));
      email.value = '';
      await s.reload();
    } catch (e) { s.result.replaceChildren(errorBox(e)); }
  });
}

/** Whether the tenant's people must use two-factor. @param {HTMLElement} view @param {any} ctx
 * @param {string | undefined} tenant */
export async function twoFactorPolicy(view, ctx, tenant) {
  const required = h('input', { type: 'checkbox', name: 'require_2fa' });
  const out = h('div');
  const form = h('form', { 'aria-label': 'Two-factor policy' },
    h('label', { class: 'inline' }, required, "Require two-factor for this tenant's people"),
    h('button', { type: 'submit' }, 'Save policy'));
  view.append(h('h2', {}, 'Two-factor policy'),
    h('p', {}, 'When required, a member without two-factor must set it up at their next sign-in before anything else.'), form, out);
  try {
    required.checked = (await api('GET', '/tenant/security/two-factor', { tenant })).require_2fa;
  } catch (e) { out.replaceChildren(errorBox(e)); }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      const saved = await api('PUT', '/tenant/security/two-factor', { tenant, body: { require_2fa: required.checked } });
      ctx.toast(saved.require_2fa ? 'Two-factor is now required' : 'Two-factor is no longer required');
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function subAccounts(view, ctx, tenant) {
  const name = h('input', { name: 'name', required: true, maxlength: 128 });
  const form = /** @type {HTMLFormElement} */ (h('form', { 'aria-label': 'Create a sub-account' }, h('label', {}, 'Sub-account name', name), h('button', { type: 'submit' }, 'Create sub-account')));
  const list = async () => pagedTable((cursor) => api('GET', `/tenant/sub-accounts?${pageQuery(cursor)}`, { tenant }), 'More sub-accounts',
    (rows) => table(['Name', 'Id', 'Role', 'Status', 'Created'], rows.map((a) => h('tr', {},
      h('td', {}, a.name), h('td', {}, idTag(a.sub_account_id)), h('td', {}, a.role), h('td', {}, badge(a.status)), h('td', { class: 'wide' }, time(a.created_at)))),
    'No sub-accounts yet.'));
  const s = await section(view, 'Sub-accounts', form, list);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await api('POST', '/tenant/sub-accounts', { tenant, body: { name: name.value } }); name.value = ''; s.result.replaceChildren(); await s.reload(); } catch (e) { s.result.replaceChildren(errorBox(e)); }
  });
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function secrets(view, ctx, tenant) {
  const key = h('input', { name: 'key', required: true, pattern: '[A-Z][A-Z0-9_]{0,127}', placeholder: 'OPENAI_API_KEY' });
  const value = h('input', { name: 'value', type: 'password', required: true, autocomplete: 'off' });
  const form = /** @type {HTMLFormElement} */ (h('form', { 'aria-label': 'Store a secret' }, h('label', {}, 'Secret name', key), h('label', {}, 'Value', value), h('button', { type: 'submit' }, 'Store secret')));
  const list = async () => {
    const data = await api('GET', '/tenant/secrets?detail=true', { tenant });
    const rows = (data.detail ?? data.secrets.map((n) => ({ key: n }))).map((sct) => {
      const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
      del.addEventListener('click', async () => {
        if (!window.confirm(`Delete the secret ${sct.key}?`)) return;
        try { await api('DELETE', `/tenant/secrets/${sct.key}`, { tenant }); await s.reload(); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      return h('tr', { 'data-secret': sct.key }, h('td', {}, h('code', {}, sct.key)), h('td', { class: 'num' }, num(sct.version)), h('td', { class: 'wide' }, time(sct.updated_at)), h('td', {}, del));
    });
    return table(['Name', 'Version', 'Updated', ''], rows, 'No secrets yet. Values are never shown here.');
  };
  const s = await section(view, 'Secrets', form, list);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await api('POST', '/tenant/secrets', { tenant, body: { key: key.value, value: value.value } }); key.value = ''; value.value = ''; s.result.replaceChildren(); await s.reload(); } catch (e) { s.result.replaceChildren(errorBox(e)); }
  });
}

// ---- One tenant: configuration --------------------------------------------------------------

/** Line diff of two texts (longest common subsequence): [' ' | '-' | '+', line][].
 * @param {string} a @param {string} b */
export function diffLines(a, b) {
  const x = a.split('\n'), y = b.split('\n');
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([' ', x[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(['+', y[j]]); j++; }
    else { out.push(['-', x[i]]); i++; }
  }
  return out;
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function configuration(view, ctx, tenant) {
  const editor = h('textarea', { name: 'config', rows: 14, spellcheck: 'false', 'aria-label': 'Configuration (JSON)', class: 'mono editor' });
  const problems = h('div');
  const save = h('button', { type: 'submit' }, 'Save configuration');
  const form = h('form', { class: 'stack wide-form', 'aria-label': 'Configuration' }, editor, save);
  const history = h('div');
  const diff = h('div');
  view.append(h('h2', {}, 'Configuration'), form, problems, h('h3', {}, 'History'), history, diff);
  async function load() {
    const current = await api('GET', '/tenant/config', { tenant });
    editor.value = JSON.stringify(current ?? {}, null, 2);
    const data = await api('GET', '/tenant/config/history?limit=50', { tenant });
    const versions = data.versions.slice().sort((a, b) => b.version - a.version); // newest first
    const pick = (label, index) => h('select', { 'aria-label': label }, ...versions.map((v, i) => h('option', { value: String(i), selected: i === index }, `v${v.version}`)));
    const from = pick('Compare from', Math.min(1, versions.length - 1));
    const to = pick('Compare to', 0);
    const compare = h('button', { type: 'button', class: 'secondary' }, 'Compare');
    compare.addEventListener('click', () => {
      const a = JSON.stringify(versions[Number(from.value)].config, null, 2);
      const b = JSON.stringify(versions[Number(to.value)].config, null, 2);
      diff.replaceChildren(h('pre', { class: 'diff', 'data-testid': 'config-diff' }, ...diffLines(a, b).map(([k, line]) => h('span', { class: k === '+' ? 'add' : k === '-' ? 'del' : '' }, `${k} ${line}\n`))));
    });
    const rows = versions.map((v, i) => {
      // The newest version is the one in force (a rollback saves a new one): nothing to roll back to.
      if (i === 0) {
        return h('tr', { 'data-version': v.version }, h('td', { class: 'num' }, `v${v.version}`), h('td', {}, time(v.saved_at)),
          h('td', {}, v.actor?.email ?? v.actor?.id ?? '—'), h('td', {}, h('strong', {}, 'current')));
      }
      const back = h('button', { type: 'button', class: 'secondary' }, `Roll back to v${v.version}`);
      back.addEventListener('click', async () => {
        if (!window.confirm(`Make version ${v.version} the current configuration again?`)) return;
        try { await api('POST', '/tenant/config/rollback', { tenant, body: { version: v.version } }); await load(); ctx.toast(`Rolled back to version ${v.version}`); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      return h('tr', { 'data-version': v.version }, h('td', { class: 'num' }, `v${v.version}`), h('td', {}, time(v.saved_at)), h('td', {}, v.actor?.email ?? v.actor?.id ?? '—'), h('td', {}, back));
    });
    history.replaceChildren(table(['Version', 'Saved', 'By', ''], rows, 'Never saved: the tenant runs on defaults.'),
      versions.length > 1 ? h('div', { class: 'actions' }, from, to, compare) : '');
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problems.replaceChildren();
    let doc;
    try { doc = JSON.parse(editor.value); } catch (e) { problems.replaceChildren(errorBox(`Not JSON: ${e.message}`)); return; }
    try {
      const saved = await api('POST', '/tenant/config', { tenant, body: doc });
      ctx.toast(`Saved version ${saved.version}`);
      await load();
    } catch (e) {
      if (e instanceof ApiError && e.code === 'invalid_config') {
        // The server names each bad field as `$.path: problem`.
        const items = e.message.split('; ').map((p) => {
          const at = p.indexOf(': ');
          return h('li', {}, h('code', {}, at > 0 ? p.slice(0, at) : ''), at > 0 ? ` ${p.slice(at + 2)}` : p);
        });
        problems.replaceChildren(h('div', { class: 'notice error', role: 'alert' }, h('strong', {}, 'The configuration was not saved:'), h('ul', { 'data-testid': 'config-problems' }, ...items)));
      } else problems.replaceChildren(errorBox(e));
    }
  });
  try { await load(); } catch (e) { history.replaceChildren(errorBox(e)); }
}

// ---- One tenant: roles and the IP allowlist --------------------------------------------------

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function roles(view, ctx, tenant) {
  const name = h('input', { name: 'role', required: true, pattern: '[a-z][a-z0-9_-]{0,63}', placeholder: 'support' });
  const perms = h('input', { name: 'permissions', placeholder: 'read, chat' });
  const form = /** @type {HTMLFormElement} */ (h('form', { 'aria-label': 'Create a role' }, h('label', {}, 'Role name', name), h('label', {}, 'Permissions', perms), h('button', { type: 'submit' }, 'Create role')));
  const list = async () => {
    const rbac = await api('GET', '/tenant/rbac', { tenant });
    const rows = rbac.roles.map((r) => {
      const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
      del.addEventListener('click', async () => {
        if (!window.confirm(`Delete the role ${r.name}?`)) return;
        try { await api('DELETE', `/tenant/rbac/roles/${r.name}`, { tenant }); await s.reload(); } catch (e) { ctx.toast(String(e.message ?? e)); }
      });
      return h('tr', {}, h('td', {}, h('code', {}, r.name), r.name === rbac.defaultRole ? ' (default)' : ''), h('td', {}, r.permissions.join(', ') || '—'), h('td', {}, r.name === rbac.defaultRole ? '' : del));
    });
    return h('div', {}, h('p', {}, `RBAC is ${rbac.enabled ? 'on' : 'off'}.`), table(['Role', 'Permissions', ''], rows, 'No roles.'));
  };
  const s = await section(view, 'Roles', form, list);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const permissions = perms.value.split(',').map((p) => p.trim()).filter(Boolean);
    try { await api('POST', '/tenant/rbac/roles', { tenant, body: { name: name.value, permissions } }); name.value = ''; perms.value = ''; s.result.replaceChildren(); await s.reload(); } catch (e) { s.result.replaceChildren(errorBox(e)); }
  });
}

/** @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant */
export async function ipAllowlist(view, ctx, tenant) {
  const enabled = h('input', { type: 'checkbox', name: 'enabled' });
  const nets = h('textarea', { name: 'allowed_ips', rows: 3, 'aria-label': 'Networks, one per line', placeholder: '203.0.113.0/24' });
  const problems = h('div');
  const form = h('form', { 'aria-label': 'IP allowlist' }, h('label', { class: 'inline' }, enabled, 'Only from these networks'), nets, h('button', { type: 'submit' }, 'Save allowlist'));
  view.append(h('h2', {}, 'IP allowlist'), form, problems);
  try {
    const current = await api('GET', '/tenant/security/ip-allowlist', { tenant });
    enabled.checked = current.enabled;
    nets.value = current.allowed_ips.join('\n');
  } catch (e) { problems.replaceChildren(errorBox(e)); }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problems.replaceChildren();
    const allowed_ips = nets.value.split('\n').map((l) => l.trim()).filter(Boolean);
    try { await api('PUT', '/tenant/security/ip-allowlist', { tenant, body: { enabled: enabled.checked, allowed_ips } }); ctx.toast('Allowlist saved'); } catch (e) { problems.replaceChildren(errorBox(e)); }
  });
}

// ---- One tenant: webhooks --------------------------------------------------------------------

/** Event types of the audit log (suggested in its filter; any other can be typed). */
const AUDIT_EVENT_TYPES = [
  'tenant.created', 'tenant.updated', 'tenant.suspended', 'tenant.reactivated', 'tenant.deleted', 'tenant.config_saved',
  'tenant.ip_allowlist_set', 'tenant.rbac_configured', 'tenant.resource_limits_set', 'tenant.two_factor_policy_set',
  'tenant.webhook_disabled', 'tenant.webhook_enabled',
  'api_key.issued', 'api_key.updated', 'api_key.rotated', 'api_key.disabled', 'api_key.enabled', 'api_key.revoked',
  'sub_account.created', 'sub_account.updated', 'sub_account.disabled', 'sub_account.enabled', 'sub_account.deleted',
  'role.created', 'role.updated', 'role.deleted', 'secret.stored', 'secret.revealed', 'secret.deleted',
  'user.invited', 'user.activated', 'user.password_set', 'user.role_changed', 'user.disabled', 'user.erased',
  'user.signed_in', 'user.sign_in_failed', 'user.totp_enrolled', 'user.totp_removed', 'user.recovery_codes_generated',
  'user.recovery_code_used', 'user.identity_linked',
];

/** Event types a delivery can carry (suggested in the filter; any other can be typed). */
const WEBHOOK_EVENT_TYPES = [
  'api_key.issued', 'api_key.updated', 'api_key.rotated', 'api_key.disabled', 'api_key.enabled', 'api_key.revoked',
  'api_key.expiring', 'quota.threshold', 'rate_limit.exceeded', 'sub_account.created', 'sub_account.updated',
  'sub_account.disabled', 'sub_account.enabled', 'sub_account.deleted', 'role.created', 'role.updated', 'role.deleted',
  'secret.stored', 'secret.revealed', 'secret.deleted', 'tenant.updated', 'tenant.suspended', 'tenant.reactivated',
  'tenant.config_saved', 'tenant.ip_allowlist_set', 'tenant.two_factor_policy_set', 'tenant.webhook_disabled',
  'tenant.webhook_enabled', 'webhook.test',
];

/**
 * Webhooks: the endpoints (configured or ever delivered to) with "failing since", disabled and
 * waiting counts, enable and send a test; the deliveries newest first, filtered by status,
 * event type and endpoint, 50 at a time, each with its attempts (status, error, latency), and
 * retry for a failed one.
 * @param {HTMLElement} view @param {any} ctx @param {string | undefined} tenant
 */
export async function webhooks(view, ctx, tenant) {
  const endpointsOut = h('div');
  const testOut = h('div', { 'aria-live': 'polite' });
  const status = h('select', { name: 'status', 'aria-label': 'Delivery status' }, ...['', 'pending', 'delivered', 'failed'].map((s) => h('option', { value: s }, s || 'any status')));
  const eventType = h('input', { name: 'event_type', 'aria-label': 'Event type', list: 'webhook-event-types', placeholder: 'api_key.issued', maxlength: 128 });
  const endpoint = h('select', { name: 'endpoint_id', 'aria-label': 'Endpoint' }, h('option', { value: '' }, 'any endpoint'));
  const filters = h('form', { class: 'filters', 'aria-label': 'Delivery filters' },
    h('label', {}, 'Status', status), h('label', {}, 'Event type', eventType),
    h('datalist', { id: 'webhook-event-types' }, ...WEBHOOK_EVENT_TYPES.map((t) => h('option', { value: t }))),
    h('label', {}, 'Endpoint', endpoint), h('button', { type: 'submit' }, 'Show deliveries'));
  const detail = h('div');
  const list = h('div');
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older deliveries');
  view.append(h('h2', {}, 'Webhook endpoints'),
    h('p', { class: 'hint' }, 'The endpoints are the configuration\'s webhooks (Configuration tab). An endpoint receives its deliveries in log order; one that fails holds up only itself.'),
    endpointsOut, testOut, h('h2', {}, 'Deliveries'), filters, detail, list, older);

  /** @type {Map<string, string>} endpoint id → URL */
  const urls = new Map();
  const endpointsTurn = newestOnly();
  async function loadEndpoints() {
    const newest = endpointsTurn();
    const [known, config] = await Promise.all([
      api('GET', '/tenant/webhooks/endpoints', { tenant }),
      api('GET', '/tenant/config', { tenant }),
    ]);
    if (!newest()) return;
    const configured = new Set((config?.webhooks ?? []).map((/** @type {any} */ w) => w.url));
    /** @type {any[]} */
    const rows = known.data.slice();
    for (const url of configured) if (!rows.some((e) => e.url === url)) rows.push({ url, pending: 0, fresh: true });
    for (const e of known.data) urls.set(e.endpoint_id, e.url);
    const chosen = endpoint.value;
    endpoint.replaceChildren(h('option', { value: '' }, 'any endpoint'),
      ...known.data.map((/** @type {any} */ e) => h('option', { value: e.endpoint_id, selected: e.endpoint_id === chosen }, e.url)));
    endpointsOut.replaceChildren(table(['URL', 'State', 'Waiting', ''], rows.map((e) => {
      const state = e.disabled_at
        ? h('span', {}, badge('disabled'), ' since ', time(e.disabled_at), e.disabled_reason ? h('div', { class: 'hint' }, e.disabled_reason) : '')
        : e.failing_since ? h('span', { class: 'bad' }, 'failing since ', time(e.failing_since))
        : e.fresh ? h('span', { class: 'hint' }, 'nothing sent yet') : h('span', {}, badge('ok'));
      const actions = h('div', { class: 'actions' });
      if (e.disabled_at) {
        actions.append(h('button', { type: 'button', class: 'secondary', onclick: async () => {
          try {
            await api('POST', `/tenant/webhooks/endpoints/${e.endpoint_id}/enable`, { tenant });
            ctx.toast(`${e.url} is enabled again`);
            await Promise.all([loadEndpoints(), loadDeliveries(null)]);
          } catch (err) { ctx.toast(String(/** @type {any} */ (err).message ?? err)); }
        } }, 'Enable'));
      }
      if (configured.has(e.url)) {
        actions.append(h('button', { type: 'button', class: 'secondary', onclick: async () => {
          testOut.replaceChildren(h('p', { class: 'hint' }, `Sending a test to ${e.url}…`));
          try {
            const r = await api('POST', '/tenant/webhooks/test', { tenant, body: { url: e.url } });
            const answer = r.status_code ? `HTTP ${r.status_code}` : 'no answer';
            testOut.replaceChildren(h('div', { class: r.delivered ? 'notice' : 'notice error', 'data-testid': 'webhook-test-result' },
              r.delivered ? `Test delivered to ${e.url}: ${answer} in ${num(r.latency_ms)} ms.`
                : `Test not delivered to ${e.url}: ${r.error ?? answer} (${num(r.latency_ms)} ms).`));
            await loadDeliveries(null);
          } catch (err) { testOut.replaceChildren(errorBox(err)); }
        } }, 'Send test'));
      }
      if (e.endpoint_id) {
        actions.append(h('button', { type: 'button', class: 'secondary', onclick: () => { endpoint.value = e.endpoint_id; loadDeliveries(null); } }, 'Its deliveries'));
      }
      return h('tr', { 'data-endpoint': e.url }, h('td', {}, h('code', {}, e.url)), h('td', { 'data-testid': 'endpoint-state' }, state),
        h('td', { class: 'num' }, num(e.pending)), h('td', {}, actions));
    }), 'No webhooks configured: add {"webhooks": [{"url", "events", "secret_ref"}]} to the configuration.'));
  }

  /** @param {any} d */
  async function showAttempts(d) {
    try {
      const full = await api('GET', `/tenant/webhooks/deliveries/${d.delivery_id}`, { tenant });
      const rows = full.attempts_made.map((/** @type {any} */ a) => h('tr', {},
        h('td', { class: 'num' }, String(a.attempt)), h('td', {}, time(a.started_at)),
        h('td', {}, a.status_code == null ? '—' : String(a.status_code)), h('td', {}, a.error ?? '—'),
        h('td', { class: 'num' }, `${num(a.latency_ms)} ms`)));
      detail.replaceChildren(h('div', { class: 'notice', 'data-testid': 'delivery-attempts' },
        h('strong', {}, `${d.event_type} to ${d.url}`), h('p', { class: 'hint' }, `Delivery ${d.delivery_id} (sent as webhook-id on every attempt)`),
        table(['Attempt', 'Started', 'Status', 'Error', 'Latency'], rows, 'No attempt yet.')));
      detail.scrollIntoView({ block: 'nearest' });
    } catch (e) { detail.replaceChildren(errorBox(e)); }
  }

  /** @type {any[]} */
  let shown = [];
  // A first page starts a new list (a filter, a refresh): older pages still on their way are dropped.
  const deliveriesTurn = newestOnly();
  let deliveriesList = deliveriesTurn();
  /** @param {number | null} cursor */
  async function loadDeliveries(cursor) {
    if (!cursor) deliveriesList = deliveriesTurn();
    const mine = deliveriesList;
    const q = new URLSearchParams({ limit: '50' });
    if (status.value) q.set('status', status.value);
    if (eventType.value.trim()) q.set('event_type', eventType.value.trim());
    if (endpoint.value) q.set('endpoint_id', endpoint.value);
    if (cursor) q.set('cursor', String(cursor));
    try {
      const data = await api('GET', `/tenant/webhooks/deliveries?${q}`, { tenant });
      if (!mine()) return;
      shown = cursor ? shown.concat(data.data) : data.data;
      older.hidden = data.next_cursor == null;
      older.onclick = () => { loadDeliveries(data.next_cursor); };
      list.replaceChildren(table(['Created', 'Event', 'Endpoint', 'Status', 'Attempts', 'Last answer', 'Next / delivered', ''], shown.map((d) => {
        const actions = h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', onclick: () => showAttempts(d), 'aria-label': `Attempts of ${d.event_type} to ${d.url}` }, 'Attempts'));
        if (d.status === 'failed') {
          actions.append(h('button', { type: 'button', class: 'secondary', onclick: async () => {
            try {
              await api('POST', `/tenant/webhooks/deliveries/${d.delivery_id}/retry`, { tenant });
              ctx.toast(`${d.event_type} to ${d.url} will be sent again`);
              await Promise.all([loadEndpoints(), loadDeliveries(null)]);
            } catch (e) { ctx.toast(String(/** @type {any} */ (e).message ?? e)); }
          } }, 'Retry'));
        }
        const last = d.last_status != null ? `HTTP ${d.last_status}${d.last_error ? `: ${d.last_error}` : ''}` : d.last_error ?? '—';
        return h('tr', { 'data-delivery': d.delivery_id, 'data-status': d.status },
          h('td', {}, time(d.created_at)), h('td', {}, h('code', {}, d.event_type)), h('td', { class: 'wide' }, d.url),
          h('td', {}, badge(d.status)), h('td', { class: 'num' }, String(d.attempts)), h('td', {}, last),
          h('td', { class: 'wide' }, d.status === 'delivered' ? time(d.delivered_at) : d.status === 'pending' ? time(d.next_attempt_at) : '—'),
          h('td', {}, actions));
      }), 'No delivery matches these filters.'),
      data.next_cursor != null ? h('p', { class: 'empty' }, `The newest ${shown.length}; older ones below.`) : '');
    } catch (e) { list.replaceChildren(errorBox(e)); }
  }
  // Showing the deliveries again reads the endpoints' state again too.
  filters.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    detail.replaceChildren();
    try { await loadEndpoints(); } catch (e) { endpointsOut.replaceChildren(errorBox(e)); }
    await loadDeliveries(null);
  });
  try { await loadEndpoints(); } catch (e) { endpointsOut.replaceChildren(errorBox(e)); }
  await loadDeliveries(null);
}
