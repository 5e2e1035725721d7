// Hash routing: the console lives at /admin/ and the JSON API under /admin/*,
// so page addresses stay in the fragment (#/keys?q=foo) and never reach the
// server.

export function parseHash(hash = window.location.hash) {
  const raw = String(hash || '').replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  const name = (i >= 0 ? raw.slice(0, i) : raw).replace(/\/+$/, '');
  const params = new URLSearchParams(i >= 0 ? raw.slice(i + 1) : '');
  return { name, params };
}

export function hashFor(name, params) {
  const qs = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString() : '';
  return `#/${name}${qs ? `?${qs}` : ''}`;
}

/** Goes to a page; the hashchange listener renders it. */
export function navigate(name, params) {
  const target = hashFor(name, params);
  if (window.location.hash === target) {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    window.location.hash = target;
  }
}

/**
 * Rewrites the current address (e.g. a page's filters) without rendering
 * again, so reload and the back button keep the state.
 */
export function replaceParams(name, params) {
  window.history.replaceState(null, '', hashFor(name, params));
}

/** A `next` value is only followed when it is one of our own pages. */
export function safeNext(next) {
  if (typeof next !== 'string' || !next.startsWith('#/')) return null;
  const { name } = parseHash(next);
  if (!name || name === 'login' || name === 'change-password') return null;
  return next;
}
