// Thin client for the admin JSON API.
//
// Authentication rides on the HttpOnly session cookie set by POST /admin/login,
// so every call uses credentials: 'same-origin' and this module never sees or
// stores a token. Errors come back as ApiError with the server's code and
// message ({"error":{"code","message"}}), ready to be shown to the user.

import { t } from './i18n.js';

const BASE = '/admin';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let unauthorizedHandler = null;

/** Called with the error whenever the session turns out to be gone. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

function buildUrl(path, query) {
  let url = BASE + path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  return url;
}

function parseRetryAfter(value) {
  if (!value) return null;
  const n = Number.parseInt(value, 10);
  if (Number.isFinite(n)) return Math.max(0, n);
  // Retry-After may also be an HTTP date.
  const when = Date.parse(value);
  return Number.isFinite(when) ? Math.max(0, Math.ceil((when - Date.now()) / 1000)) : null;
}

/**
 * Sends one request. `body` is sent as JSON, `form` (FormData) as multipart.
 * Resolves to the parsed JSON answer, or null for 204 / empty bodies.
 */
export async function request(method, path, { query, body, form, signal } = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (form) {
    payload = form; // the browser sets the multipart boundary itself
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }

  let res;
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: payload,
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network_error', t('error.network'));
  }

  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }

  if (!res.ok) {
    const e = data && data.error && typeof data.error === 'object' ? data.error : {};
    const code = typeof e.code === 'string' ? e.code : `http_${res.status}`;
    const message = typeof e.message === 'string' && e.message ? e.message : t('error.http', { status: res.status });
    const err = new ApiError(res.status, code, message, parseRetryAfter(res.headers.get('Retry-After')));
    // A 401 for a mistyped password (login, change password) is not a lost
    // session; every other 401 means the cookie expired or was revoked.
    const signInStep = path === '/login' || path === '/login/totp' || code === 'invalid_totp_code';
    if (res.status === 401 && code !== 'invalid_credentials' && !signInStep && unauthorizedHandler) {
      unauthorizedHandler(err);
    }
    throw err;
  }
  return data;
}

export const api = {
  get: (path, query, opts) => request('GET', path, { ...opts, query }),
  post: (path, body, opts) => request('POST', path, { ...opts, body }),
  patch: (path, body, opts) => request('PATCH', path, { ...opts, body }),
  del: (path, opts) => request('DELETE', path, opts),
  upload: (path, form, opts) => request('POST', path, { ...opts, form }),
};

/** Encodes an id for use in a path segment. */
export function seg(id) {
  return encodeURIComponent(String(id));
}
