// The console's only way to the server: the public API, with the session cookie (sent by
// the browser) and, on writes, the page's CSRF token. A 401 means the session is gone:
// back to the sign-in form.

const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

/** An API error: status and the server's `{code, message}`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function call(method, path, params) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const resp = await fetch(path + query(params), { method, headers, credentials: 'same-origin' });
  if (resp.status === 401) {
    window.location.assign('/console');
    throw new ApiError(401, { message: 'signed out' });
  }
  if (resp.status === 204) return null;
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

/** GET a JSON resource. */
export const get = (path, params) => call('GET', path, params);

/** POST without a body. */
export const post = (path) => call('POST', path);

/**
 * Watches a project's changes (Server-Sent Events; the cookie authenticates, no key in
 * the URL). `onOperation` gets each changed operation; `onState` 'live' or 'reconnecting'.
 * EventSource resumes with Last-Event-ID by itself. Returns a function that closes it.
 */
export function watch(projectId, filters, onOperation, onState) {
  const es = new EventSource(`/v1/operations/watch${query({ project_id: projectId, ...filters })}`);
  es.addEventListener('operation', (e) => {
    try { onOperation(JSON.parse(e.data)); } catch (err) { console.error(err); }
  });
  es.addEventListener('reset', () => onOperation(null));
  es.onopen = () => onState?.('live');
  es.onerror = () => onState?.('reconnecting');
  return () => es.close();
}

/** Ends the session and goes to the sign-in form. */
export async function signOut() {
  await post('/console/sign-out');
  window.location.assign('/console');
}
