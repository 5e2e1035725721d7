// The signed-in frame: top bar, left menu (a drawer on narrow screens) and
// the main area the pages render into.

import { h, icon } from './ui.js';
import { t, getLang, otherLang, setLang } from './i18n.js';
import { getThemePref, setThemePref } from './theme.js';

// `owner` marks the pages only an owner can use (the server refuses the
// others their API); the menu shows a role what it may open.
export const NAV = [
  { name: 'dashboard', icon: 'dashboard', label: 'nav.dashboard' },
  { name: 'keys', icon: 'key', label: 'nav.keys' },
  { name: 'tokens', icon: 'users', label: 'nav.tokens' },
  { name: 'logs', icon: 'logs', label: 'nav.logs' },
  { name: 'audit', icon: 'activity', label: 'nav.audit' },
  { name: 'account', icon: 'lock', label: 'nav.account' },
  { name: 'admins', icon: 'users', label: 'nav.admins', owner: true },
  { name: 'settings', icon: 'settings', label: 'nav.settings', owner: true },
];

// Pages without a menu entry of their own, opened from another page's screen:
// they follow that page's rule (and keep its menu entry lit).
export const PARENT = { notifications: 'settings' };

/** Whether the signed-in admin may open a page. */
export function mayOpen(profile, name) {
  const item = NAV.find((n) => n.name === (PARENT[name] || name));
  return !!item && (!item.owner || (profile && profile.role === 'owner'));
}

const DRAWER_ID = 'nav-drawer';

export function logo(size = 'text-xl') {
  return h(
    'span',
    { class: `flex items-center gap-2 font-bold tracking-tight ${size}` },
    h('span', { class: 'grid place-items-center rounded-lg bg-primary text-primary-content h-8 w-8' }, icon('zap', 'h-5 w-5')),
    h('span', null, 'gpt2api'),
  );
}

/** Language button: shows the language it switches to. */
export function langButton(cls = 'btn btn-ghost btn-sm') {
  const next = otherLang();
  return h(
    'button',
    {
      type: 'button',
      class: cls,
      testid: 'lang-switch',
      dataset: { lang: getLang() },
      title: t('topbar.language'),
      'aria-label': t('topbar.language'),
      onclick: () => setLang(next),
    },
    icon('globe', 'h-4 w-4'),
    h('span', null, next === 'en' ? 'EN' : '中文'),
  );
}

/** Theme menu: system / light / dark. */
export function themeMenu() {
  const pref = getThemePref();
  const current = { system: 'monitor', light: 'sun', dark: 'moon' }[pref];
  const item = (value, ic) =>
    h(
      'li',
      null,
      h(
        'button',
        {
          type: 'button',
          class: pref === value ? 'menu-active' : '',
          testid: `theme-option-${value}`,
          onclick: (e) => {
            setThemePref(value);
            e.currentTarget.blur();
            document.activeElement && document.activeElement.blur();
          },
        },
        icon(ic, 'h-4 w-4'),
        t(`theme.${value}`),
      ),
    );
  return h(
    'div',
    { class: 'dropdown dropdown-end', testid: 'theme-menu-root' },
    h('div', { tabindex: '0', role: 'button', class: 'btn btn-ghost btn-sm btn-square', testid: 'theme-switch', title: t('topbar.theme'), 'aria-label': t('topbar.theme'), dataset: { theme: pref } }, icon(current, 'h-4 w-4')),
    h('ul', { tabindex: '0', class: 'dropdown-content menu bg-base-100 rounded-box z-50 mt-2 w-40 p-2 shadow-lg border border-base-300', testid: 'theme-menu' }, item('system', 'monitor'), item('light', 'sun'), item('dark', 'moon')),
  );
}

/**
 * Builds the frame. Returns {root, main, setActive}.
 * `onLogout` is called when the logout button is pressed.
 */
export function buildShell(profile, { onLogout }) {
  const toggle = h('input', { id: DRAWER_ID, type: 'checkbox', class: 'drawer-toggle', 'aria-hidden': 'true' });
  const links = new Map();
  const closeDrawer = () => {
    toggle.checked = false;
  };

  const menu = h(
    'ul',
    { class: 'nav-menu menu w-full gap-1 p-3 text-base', testid: 'nav' },
    NAV.filter((item) => mayOpen(profile, item.name)).map((item) => {
      const a = h('a', { href: `#/${item.name}`, testid: `nav-${item.name}`, onclick: closeDrawer }, icon(item.icon), h('span', null, t(item.label)));
      links.set(item.name, a);
      return h('li', null, a);
    }),
  );

  const logoutBtn = h(
    'button',
    { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'logout-button', title: t('topbar.logout'), onclick: onLogout },
    icon('logout', 'h-4 w-4'),
    h('span', { class: 'hidden sm:inline' }, t('topbar.logout')),
  );

  const topbar = h(
    'header',
    { class: 'navbar sticky top-0 z-30 h-16 min-h-16 gap-1 border-b border-base-300 bg-base-100/90 px-2 backdrop-blur sm:px-4', testid: 'topbar' },
    h('label', { for: DRAWER_ID, class: 'btn btn-ghost btn-square btn-sm lg:hidden', 'aria-label': t('topbar.menu'), testid: 'nav-toggle' }, icon('menu')),
    h('a', { href: '#/dashboard', class: 'flex-1 min-w-0', testid: 'logo' }, logo()),
    langButton(),
    themeMenu(),
    h(
      'div',
      { class: 'hidden items-center gap-2 px-2 sm:flex', testid: 'current-user', title: t('topbar.signedInAs') },
      h('div', { class: 'avatar avatar-placeholder' }, h('div', { class: 'bg-neutral text-neutral-content w-7 rounded-full' }, h('span', { class: 'text-xs' }, (profile.username || '?').slice(0, 1).toUpperCase()))),
      h('span', { class: 'max-w-40 truncate text-sm font-medium', testid: 'current-username' }, profile.username),
    ),
    logoutBtn,
  );

  const main = h('main', { class: 'mx-auto w-full max-w-7xl p-4 sm:p-6 lg:p-8', id: 'main', testid: 'main' });

  // On wide screens the menu column spans the whole page height (its
  // background and border reach the bottom of long pages) while the menu
  // itself stays in view, sticky under the top bar.
  const side = h(
    'div',
    { class: 'drawer-side z-40 lg:static lg:h-auto lg:overflow-visible lg:border-r lg:border-base-300 lg:bg-base-100', testid: 'nav-side' },
    h('label', { for: DRAWER_ID, 'aria-label': t('topbar.closeMenu'), class: 'drawer-overlay' }),
    h(
      'aside',
      { class: 'flex min-h-full w-64 flex-col border-r border-base-300 bg-base-100 lg:sticky lg:top-16 lg:h-[calc(100dvh-4rem)] lg:min-h-0 lg:overflow-y-auto lg:border-r-0', testid: 'nav-panel' },
      h('div', { class: 'flex h-16 items-center border-b border-base-300 px-5 lg:hidden' }, logo('text-lg')),
      h('div', { class: 'px-4 pt-4 pb-1 text-xs font-semibold uppercase tracking-wider text-base-content/50 sm:hidden' }, t('topbar.signedInAs'), ' ', h('span', { class: 'normal-case' }, profile.username)),
      menu,
    ),
  );

  const root = h('div', { class: 'min-h-screen', testid: 'shell' }, topbar, h('div', { class: 'drawer lg:drawer-open min-h-[calc(100dvh-4rem)]' }, toggle, h('div', { class: 'drawer-content min-w-0' }, main), side));

  function setActive(name) {
    for (const [n, a] of links) {
      a.classList.toggle('menu-active', n === name);
      if (n === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  return { root, main, setActive };
}

// Keep every visible theme menu in step with the current choice.
window.addEventListener('themechange', () => {
  document.querySelectorAll('[data-testid="theme-menu-root"]').forEach((el) => el.replaceWith(themeMenu()));
});
