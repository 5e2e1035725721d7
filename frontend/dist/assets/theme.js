// Light / dark theme. "system" (the default) leaves data-theme unset so that
// daisyUI follows prefers-color-scheme; an explicit choice is remembered.

const STORAGE_KEY = 'gpt2api.theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');

export function getThemePref() {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

/** The theme actually shown: light or dark. */
export function effectiveTheme() {
  const pref = getThemePref();
  if (pref !== 'system') return pref;
  return media.matches ? 'dark' : 'light';
}

export function setThemePref(pref) {
  try {
    if (pref === 'light' || pref === 'dark') localStorage.setItem(STORAGE_KEY, pref);
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    /* applied for this visit only */
  }
  applyTheme();
}

export function applyTheme() {
  const pref = getThemePref();
  if (pref === 'system') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', pref);
  window.dispatchEvent(new CustomEvent('themechange', { detail: effectiveTheme() }));
}

media.addEventListener('change', () => {
  if (getThemePref() === 'system') applyTheme();
});
