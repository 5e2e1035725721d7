// Reasons in the operator's language: the server gives a stable `code` with `params` beside its
// English text; the console shows the translation of the code, else the English text.

import { t, fmtDateTime, fmtRelative } from './i18n.js';

/** The translated text of a reason code, or `fallback` when the code has no translation. */
export function reasonText(code, params, fallback) {
  if (!code) return fallback || '';
  const key = `code.${code}`;
  const p = { ...(params || {}) };
  for (const k of ['until', 'resets_at']) {
    if (p[k]) p[k] = `${fmtDateTime(p[k])} (${fmtRelative(p[k])})`;
  }
  const text = t(key, p);
  if (text === key) return fallback || code;
  return text;
}

/** A log row's error, translated. */
export function logError(log) {
  return reasonText(log.error_code, log.error_params, log.error_message);
}
