// @ts-check
// The console's only way to the server: the public control API, with the session cookie,
// the CSRF token on changes, and X-Tenant-ID when a platform person acts in a tenant.

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @param {string} name */
export function cookie(name) {
  const pair = document.cookie.split('; ').find((p) => p.startsWith(`${name}=`));
  return pair ? decodeURIComponent(pair.slice(name.length + 1)) : '';
}

let inFlight = 0;
let timer = 0;
function busy(delta) {
  inFlight += delta;
  const bar = document.getElementById('progress');
  if (!bar) return;
  if (inFlight > 0 && !timer) {
    // Only what takes more than 300 ms shows the indicator.
    timer = window.setTimeout(() => { bar.hidden = inFlight === 0; }, 300);
  }
  if (inFlight === 0) {
    window.clearTimeout(timer);
    timer = 0;
    bar.hidden = true;
  }
}

/**
 * @param {string} method
 * @param {string} path
 * @param {{ body?: unknown, tenant?: string }} [options]
 */
export async function api(method, path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = cookie('tokenhub_csrf');
  if (options.tenant) headers['X-Tenant-ID'] = options.tenant;
  busy(1);
  try {
    const res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      // The session ended (signed out elsewhere, expired, ended from another browser): the
      // console sends the person to sign in instead of showing the API's message.
      if (res.status === 401) window.dispatchEvent(new CustomEvent('tokenhub:unauthenticated'));
      throw new ApiError(res.status, data?.error?.code ?? 'error', data?.error?.message ?? res.statusText);
    }
    return data;
  } finally {
    busy(-1);
  }
}

/**
 * Live audit records (server-sent events read through fetch, so that the tenant header can be
 * sent). Calls `onEvent` with each record until `signal` aborts; reconnects after errors.
 * @param {string} path
 * @param {string | undefined} tenant
 * @param {(item: any) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function live(path, tenant, onEvent, signal) {
  let cursor = '';
  while (!signal.aborted) {
    try {
      /** @type {Record<string, string>} */
      const headers = { Accept: 'text/event-stream' };
      if (tenant) headers['X-Tenant-ID'] = tenant;
      const url = cursor ? `${path}?cursor=${cursor}` : path;
      const res = await fetch(url, { headers, credentials: 'same-origin', signal });
      if (!res.ok || !res.body) throw new Error(`stream ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = block.split('\n').find((l) => l.startsWith('id: '));
          const from = block.match(/^: from (\d+)/);
          if (from && !cursor) cursor = from[1];
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (id) cursor = id.slice(4);
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
