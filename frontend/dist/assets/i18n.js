// Translations and locale-aware formatting.
//
// Dictionaries are plain JSON files next to this module (i18n.<lang>.json).
// English is always loaded too, so a key missing from another dictionary
// still shows readable English instead of the raw key.

const SUPPORTED = ['en', 'zh-CN'];
const STORAGE_KEY = 'gpt2api.lang';

let lang = 'en';
let dict = {};
let fallback = {};

async function loadDict(code) {
  const res = await fetch(new URL(`i18n.${code}.json`, import.meta.url), { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`cannot load dictionary ${code}: HTTP ${res.status}`);
  return res.json();
}

function pickLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (SUPPORTED.includes(saved)) return saved;
  } catch {
    /* storage disabled */
  }
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const p of prefs) {
    const l = String(p).toLowerCase();
    if (l.startsWith('zh')) return 'zh-CN';
    if (l.startsWith('en')) return 'en';
  }
  return 'en';
}

async function use(code) {
  const [en, other] = await Promise.all([loadDict('en'), code === 'en' ? null : loadDict(code)]);
  fallback = en;
  dict = other || en;
  lang = code;
  document.documentElement.lang = code;
}

export async function initI18n() {
  await use(pickLanguage());
}

export function getLang() {
  return lang;
}

export function otherLang() {
  return lang === 'en' ? 'zh-CN' : 'en';
}

/** Switches language, remembers it, and tells the app to re-render. */
export async function setLang(code) {
  if (!SUPPORTED.includes(code) || code === lang) return;
  await use(code);
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch {
    /* not remembered, still applied */
  }
  window.dispatchEvent(new CustomEvent('langchange', { detail: code }));
}

function lookup(key) {
  return Object.prototype.hasOwnProperty.call(dict, key) ? dict[key] : fallback[key];
}

/**
 * Looks up a key and fills `{name}` placeholders from params. With a numeric
 * `params.count`, the plural form `<key>.<category>` (e.g. `.one`, from
 * Intl.PluralRules) is used when the dictionary has one: "1 error", "2 errors".
 */
export function t(key, params) {
  let s;
  if (params && typeof params.count === 'number') {
    const form = `${key}.${new Intl.PluralRules(lang).select(params.count)}`;
    if (Object.prototype.hasOwnProperty.call(dict, form)) s = dict[form];
  }
  if (s === undefined) s = lookup(key);
  if (s === undefined) return key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (params[name] === undefined || params[name] === null ? m : String(params[name])));
  }
  return s;
}

// ---- formatting -----------------------------------------------------------

const DASH = '—';

export function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return DASH;
  return new Intl.NumberFormat(lang).format(n);
}

/** 1234567 -> "1.2M" / "123.5万": for token counts on cards and charts. */
export function fmtCompact(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return DASH;
  return new Intl.NumberFormat(lang, { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

export function fmtPercent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return DASH;
  return new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: 1 }).format(ratio);
}

function toDate(v) {
  if (!v) return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Local date and time, 24-hour clock, compact enough for table cells. */
export function fmtDateTime(v, withSeconds = false) {
  const d = toDate(v);
  if (!d) return DASH;
  return new Intl.DateTimeFormat(lang, {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: withSeconds ? '2-digit' : undefined,
    hourCycle: 'h23',
  }).format(d);
}

export function fmtTime(v, withDate = false) {
  const d = toDate(v);
  if (!d) return DASH;
  const opts = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (withDate) Object.assign(opts, { month: '2-digit', day: '2-digit' });
  return new Intl.DateTimeFormat(lang, opts).format(d);
}

export function fmtDay(v) {
  const d = toDate(v);
  if (!d) return DASH;
  return new Intl.DateTimeFormat(lang, { month: '2-digit', day: '2-digit' }).format(d);
}

/** "3 minutes ago" / "in 2 hours". */
export function fmtRelative(v, now = Date.now()) {
  const d = toDate(v);
  if (!d) return DASH;
  const diff = (d.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });
  if (abs < 45) return rtf.format(Math.round(diff), 'second');
  if (abs < 2700) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400 * 1.5) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 86400 * 45) return rtf.format(Math.round(diff / 86400), 'day');
  return rtf.format(Math.round(diff / (86400 * 30)), 'month');
}

/**
 * 93784 -> "1d 2h" / "1天2小时": two units at most. Seconds appear under a
 * minute, or as the second unit when `withSeconds` (for live countdowns).
 */
export function fmtDuration(seconds, withSeconds = false) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  let s = Math.max(0, Math.floor(Number(seconds)));
  const parts = [];
  const units = [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ];
  if (withSeconds) units.push(['s', 1]);
  for (const [u, size] of units) {
    if (s >= size) {
      parts.push(t(`unit.${u}`, { n: Math.floor(s / size) }));
      s %= size;
    }
    if (parts.length === 2) break;
  }
  if (parts.length === 0) parts.push(t('unit.s', { n: s }));
  return parts.join(t('unit.sep'));
}
