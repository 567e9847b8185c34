// The console's one way to the master: every read and every action is a call of the documented
// API, relative to the page (`/ui/` → `../queues`), so the console also works behind a proxy
// that serves the master under a path prefix. The token the operator signed in with is kept in
// sessionStorage: for this tab only, gone when it closes.

const TOKEN_KEY = 'leasehold.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

// Whether the last request reached the master; the header shows it, so a page that stopped
// updating says so rather than showing old numbers as if they were current.
const connection = { online: true, listeners: new Set() };

export function onConnection(listener) {
  connection.listeners.add(listener);
  return () => connection.listeners.delete(listener);
}

function setOnline(online) {
  if (online === connection.online) return;
  connection.online = online;
  connection.listeners.forEach((listener) => listener(online));
}

// A 401 anywhere means the token was revoked or never valid: back to the sign-in screen.
const signedOut = new Set();
export function onSignedOut(listener) {
  signedOut.add(listener);
  return () => signedOut.delete(listener);
}

/** Calls the API; answers the parsed JSON body, or throws an ApiError with the problem. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
  }
  let response;
  try {
    response = await fetch(`../${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (error) {
    setOnline(false);
    throw new ApiError(0, { title: 'The master cannot be reached', detail: String(error.message || error) });
  }
  // A proxy's 502/503/504 in front of a master that is down is a lost connection too.
  setOnline(![502, 503, 504].includes(response.status));
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (response.ok) return json;
  if (response.status === 401) signedOut.forEach((listener) => listener());
  throw new ApiError(response.status, json || { title: `HTTP ${response.status}`, detail: text });
}

/** `path?query` from an object, leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
