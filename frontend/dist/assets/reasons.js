// Reasons in the operator's language: the server gives a stable `code` with `params` beside its
// English text; the console shows the translation of the code, else the English text.

import { t, fmtDateTime, fmtRelative } from './i18n.js';

// Codes that only name the kind of answer: the stored text says more (the upstream's own words).
const GENERIC = new Set(['invalid_request', 'other', 'permission_denied', 'model_not_found', 'internal_error', 'service_unavailable', 'payload_too_large']);

/**
 * The translated text of a reason code, or `fallback` when the code has no translation, is
 * generic, or lacks a parameter its translation needs.
 */
export function reasonText(code, params, fallback) {
  if (!code || (GENERIC.has(code) && fallback)) return fallback || code || '';
  const key = `code.${code}`;
  const p = { ...(params || {}) };
  for (const k of ['until', 'resets_at']) {
    if (p[k]) p[k] = `${fmtDateTime(p[k])} (${fmtRelative(p[k])})`;
  }
  const text = t(key, p);
  if (text === key || (fallback && /\{\w+\}/.test(text))) return fallback || code;
  return text;
}

/** A log row's error, translated. */
export function logError(log) {
  return reasonText(log.error_code, log.error_params, log.error_message);
}
