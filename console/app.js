// @ts-check
// The console: who is signed in (`GET /auth/me`), which pages their role may use, and a hash
// router. Pages are in pages.js; every call goes through api.js to the public API.
import { api, ApiError, live } from './api.js';
import * as pages from './pages.js';

const view = /** @type {HTMLElement} */ (document.getElementById('view'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const who = /** @type {HTMLElement} */ (document.getElementById('who'));
const status = /** @type {HTMLElement} */ (document.getElementById('status'));

/** What each role may open (the server decides again on every call). */
const ROLE_PAGES = {
  super_admin: ['tenants', 'tenant', 'keys', 'verify', 'usage', 'audit', 'audit-all', 'people', 'platform-keys'],
  auditor: ['audit', 'audit-all'],
  finance_admin: ['usage'],
  tenant_admin: ['tenant', 'keys', 'usage', 'audit'],
  tenant_finance: ['tenant', 'usage'],
  tenant_viewer: ['tenant', 'usage'],
};

/** @type {any} */
let me = null;
/** @type {AbortController} */
let pageScope = new AbortController();

/** @param {string} text */
function toast(text) {
  status.textContent = text;
  window.setTimeout(() => { if (status.textContent === text) status.textContent = ''; }, 5000);
}

/** @param {string} what */
const may = (what) => Boolean(me && (ROLE_PAGES[me.role] ?? []).includes(what));

function home() {
  if (may('tenants')) return '#/tenants';
  if (may('tenant') && me.tenant_id) return `#/tenant/${me.tenant_id}`;
  if (may('usage')) return '#/usage';
  if (may('audit')) return '#/audit';
  return '#/nothing';
}

function renderNav() {
  nav.replaceChildren();
  who.replaceChildren();
  if (!me) return;
  const links = [];
  if (may('tenants')) links.push(['#/tenants', 'Tenants']);
  if (may('tenant') && me.tenant_id) links.push([`#/tenant/${me.tenant_id}`, may('keys') ? 'Tenant & keys' : 'Tenant']);
  if (may('usage')) links.push(['#/usage', 'Usage']);
  if (may('audit')) links.push(['#/audit', 'Audit']);
  if (may('people')) links.push(['#/people', 'People']);
  if (may('platform-keys')) links.push(['#/platform-keys', 'Platform keys']);
  links.push(['#/account', 'My account']);
  for (const [href, label] of links) {
    const current = location.hash.startsWith(href.split('?')[0]);
    nav.append(pages.h('a', { href, 'aria-current': current ? 'page' : undefined }, label));
  }
  const out = pages.h('button', { type: 'button', class: 'secondary' }, 'Sign out');
  out.addEventListener('click', async () => {
    await api('POST', '/auth/logout').catch(() => {});
    me = null;
    navigate('#/signin');
  });
  who.append(pages.h('span', {}, `${me.email} · ${me.role}`), out);
}

/** @param {string} hash */
function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const ctx = {
  get me() { return me; },
  get platform() { return me && !me.tenant_id; },
  may,
  navigate,
  toast,
  /** Reads the person again (after a change to their own account) and redraws the page. */
  reload: async () => { await refreshMe(); renderNav(); await route(); },
  /** Live updates for the current page only. */
  onLive: (/** @type {string} */ path, /** @type {string | undefined} */ tenant, /** @type {(e: any) => void} */ fn) => {
    live(path, tenant, fn, pageScope.signal);
  },
};

async function refreshMe() {
  try {
    me = await api('GET', '/auth/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) me = null;
    else throw e;
  }
}

async function route() {
  pageScope.abort();
  pageScope = new AbortController();
  const hash = location.hash || '#/';
  const path = hash.split('?')[0];
  // While a page loads it is aria-busy, and says so after a moment (a fast page just appears);
  // `data-loaded` names the address it finished loading (tests wait for it).
  const routing = ++routed;
  view.setAttribute('aria-busy', 'true');
  delete view.dataset.loaded;
  const previous = view.firstChild;
  const slow = setTimeout(() => {
    // Only while the page has drawn nothing yet (one that draws, then loads, shows its own).
    if (routing === routed && view.firstChild === previous) view.replaceChildren(pages.h('p', { class: 'hint', role: 'status' }, 'Loading…'));
  }, 300);
  try {
    await routeTo(path);
  } finally {
    clearTimeout(slow);
    if (routing === routed) {
      view.setAttribute('aria-busy', 'false');
      view.dataset.loaded = hash;
    }
  }
}

/** Pages started so far (a newer one supersedes the one loading). */
let routed = 0;

/** @param {string} path */
async function routeTo(path) {
  try {
    if (path.startsWith('#/invite/')) {
      // An invite link: set a password, then sign in (and enrol TOTP where the role needs it).
      renderNav();
      pages.acceptInvite(view, decodeURIComponent(path.slice('#/invite/'.length)), signedIn);
      return;
    }
    if (!me) await refreshMe();
    if (!me) {
      renderNav();
      if (path.startsWith('#/signin/mfa/')) {
        pages.secondFactor(view, decodeURIComponent(path.slice('#/signin/mfa/'.length)), signedIn);
      } else {
        await pages.signIn(view, signedIn);
      }
      return;
    }
    renderNav();
    if (me.totp_enrolment_required) {
      await pages.enrol(view, me, async () => { await refreshMe(); navigate(home()); });
      return;
    }
    if (path === '#/security') { navigate('#/account'); return; }
    const tenantMatch = path.match(/^#\/tenant\/([^/]+)(?:\/([a-z-]+))?$/);
    const usageMatch = path.match(/^#\/usage(?:\/([^/]+))?$/);
    if (path === '#/tenants' && may('tenants')) await pages.tenants(view, ctx);
    else if (tenantMatch && may('tenant')) await pages.tenant(view, ctx, tenantMatch[1], tenantMatch[2]);
    else if (path === '#/audit' && may('audit')) await pages.audit(view, ctx);
    else if (usageMatch && may('usage')) await pages.usage(view, ctx, usageMatch[1]);
    else if (path === '#/account') await pages.account(view, ctx);
    else if (path === '#/people' && may('people')) await pages.people(view, ctx);
    else if (path === '#/platform-keys' && may('platform-keys')) await pages.platformKeys(view, ctx);
    else if (path === '#/nothing') view.replaceChildren(pages.h('h1', {}, 'Nothing to show yet'), pages.h('p', {}, 'Your role has no console page yet; the API serves it (see /docs).'));
    else { navigate(home()); return; }
    view.focus({ preventScroll: true });
  } catch (e) {
    view.replaceChildren(pages.h('h1', {}, 'Something went wrong'), pages.errorBox(e), pages.h('p', {}, 'Reload the page; if it persists, check the server.'));
  }
}

/** @param {any} answer */
async function signedIn(answer) {
  me = answer;
  await refreshMe();
  navigate(home());
}

// A 401 while signed in: the session ended; sign in again (the page asked for stays the hash
// to come back to after).
window.addEventListener('tokenhub:unauthenticated', () => {
  if (!me) return;
  me = null;
  toast('Your session ended: sign in again.');
  route();
});
window.addEventListener('hashchange', route);
route();
