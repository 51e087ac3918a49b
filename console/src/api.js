// API v1 as the console uses it: every request carries the signed-in
// token, and every refusal becomes an ApiError with the server's stable
// code and message, shown to the person as the API wrote it.

const TOKEN_KEY = "cairn.console.token";

/** An answer of API v1 that was not a success. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The token of this browser tab, if someone signed in. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps (or, with null, forgets) the token for this tab only. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls API v1. `query` is an object whose array values repeat the
 * parameter; `body` is sent as JSON. Answers the parsed JSON (or the text,
 * for `/metrics`).
 */
export async function call(method, path, { query, body, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const one of [value].flat()) {
      if (one !== undefined && one !== null && one !== "") url.searchParams.append(name, String(one));
    }
  }
  const headers = {};
  if (token()) headers.authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", `the server did not answer (${error.message})`);
  }
  const text = await response.text();
  if (!response.ok) {
    let error = {};
    try {
      error = JSON.parse(text).error ?? {};
    } catch {
      // Not an API error body: fall back to the status line.
    }
    const { code, message, ...details } = error;
    throw new ApiError(response.status, code ?? `http_${response.status}`,
      message ?? `${response.status} ${response.statusText}`, details);
  }
  const type = response.headers.get("content-type") ?? "";
  return type.includes("json") ? JSON.parse(text) : text;
}

export const get = (path, query, options) => call("GET", path, { ...options, query });
export const post = (path, body, options) => call("POST", path, { ...options, body });
export const put = (path, body, options) => call("PUT", path, { ...options, body });
export const del = (path, options) => call("DELETE", path, options);

/** A path segment, escaped. */
export const segment = (value) => encodeURIComponent(value);

/**
 * Who is signed in and what they may do (`GET /v1/whoami`). Without
 * `--auth` the server lets everyone do everything.
 */
export async function whoami() {
  return get("/v1/whoami");
}

/** Whether `permissions` allow `action` ("admin", or "read"/"write"/"subscribe" of `name`). */
export function may(permissions, action, name = "") {
  if (!permissions) return false;
  if (permissions.admin) return true;
  if (action === "admin") return false;
  return (permissions[action] ?? []).some((pattern) => matches(pattern, name));
}

/** Cairn's pattern rule: `*` matches any run of characters, dots included. */
export function matches(pattern, name) {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === name;
  if (!name.startsWith(parts[0])) return false;
  let position = parts[0].length;
  for (const part of parts.slice(1, -1)) {
    const found = name.indexOf(part, position);
    if (found < 0) return false;
    position = found + part.length;
  }
  const last = parts[parts.length - 1];
  return name.length - position >= last.length && name.endsWith(last);
}
