// The API client: session cookie + X-CSRF-Token, and errors turned into words.

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = body && body.error ? body.error : null;
    super(error ? error.message : fallback || `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : "http_error";
    this.details = (error && error.details) || {};
  }
}

export const session = { csrf: null, me: null };
const unauthorized = new Set();

export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

export async function api(method, path, body, headers = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD"].includes(method) && session.csrf) init.headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, null, `Cannot reach the server (${exc.message}).`);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = new ApiError(response.status, data, text.slice(0, 200) || response.statusText);
    if (response.status === 401 && path !== "/api/v1/auth/login") unauthorized.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

const STATUS_WORDS = {
  0: "The server could not be reached",
  400: "The request was malformed",
  401: "You are not logged in (or the session expired)",
  403: "You are not allowed to do this",
  404: "Not found",
  409: "Not possible in the current state",
  412: "Someone else changed this in the meantime",
  422: "Some input is not valid",
  429: "Too many attempts",
};

// An error as a title and lines of words: the server's message, its field errors, the state.
export function describe(err) {
  if (!(err instanceof ApiError)) return { title: "Cannot do that", lines: [String(err && err.message ? err.message : err)] };
  const title = STATUS_WORDS[err.status] || `Error ${err.status}`;
  const lines = [err.message];
  for (const e of err.details.errors || []) lines.push(`${e.field}: ${e.message}`);
  if (err.details.state) lines.push(`Current state: ${String(err.details.state).replaceAll("_", " ")}.`);
  if (err.status === 412 && err.details.version !== undefined) {
    lines.push(`It is now at version ${err.details.version}: reload to see the changes, then edit again.`);
  }
  return { title, lines };
}
