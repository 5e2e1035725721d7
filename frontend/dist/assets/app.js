// Entry point: loads the language, then renders the page named by the hash.
//
// Flow: #/login is public. Every other page first makes sure the admin is
// signed in (GET /admin/profile, cached for the visit); if the account still
// has its initial password, #/change-password is forced before anything else.
// Any 401 from the API sends the user to #/login?next=<where they were>.

import { initI18n, t } from './i18n.js';
import { applyTheme } from './theme.js';
import { api, onUnauthorized } from './api.js';
import { parseHash, navigate, safeNext } from './router.js';
import { buildShell, mayOpen, PARENT } from './layout.js';
import { h, setChildren, errorBlock, toast, toastError } from './ui.js';
import * as loginPage from './page-login.js';
import { mountForced } from './page-password.js';
import * as dashboard from './page-dashboard.js';
import * as keys from './page-keys.js';
import * as tokens from './page-tokens.js';
import * as logs from './page-logs.js';
import * as settings from './page-settings.js';
import * as admins from './page-admins.js';
import * as audit from './page-audit.js';
import * as account from './page-account.js';
import * as notifications from './page-notifications.js';

const PAGES = { dashboard, keys, tokens, logs, settings, admins, audit, account, notifications };

const session = { profile: null };
let shell = null;
let cleanup = null;
let renderSeq = 0;

function goAfterLogin(next) {
  const target = safeNext(next);
  if (session.profile && session.profile.must_change_password) {
    navigate('change-password', { next: target || undefined });
  } else if (target) {
    window.location.hash = target;
  } else {
    navigate('dashboard');
  }
}

async function logout() {
  try {
    await api.post('/logout');
  } catch (err) {
    if (err.status !== 401) {
      toastError(err);
      return;
    }
  }
  session.profile = null;
  shell = null;
  navigate('login');
  toast(t('login.loggedOut'), 'info');
}

onUnauthorized(() => {
  // Only a session that was in use has "expired"; a first visit just signs in.
  const hadSession = !!session.profile;
  session.profile = null;
  shell = null;
  const { name } = parseHash();
  if (name === 'login') return;
  navigate('login', { next: safeNext(window.location.hash) || undefined, expired: hadSession ? '1' : undefined });
});

function runCleanup() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page failing to clean up must not block navigation */
    }
    cleanup = null;
  }
  // Dialogs belong to the page that opened them.
  document.querySelectorAll('dialog[open]').forEach((d) => d.close());
}

async function render() {
  const seq = ++renderSeq;
  const { name, params } = parseHash();
  const app = document.getElementById('app');
  runCleanup();
  const ctx = { params, session, goAfterLogin, logout };

  if (name === 'login') {
    shell = null;
    cleanup = loginPage.mount(app, ctx);
    return;
  }

  if (!session.profile) {
    try {
      const profile = await api.get('/profile');
      if (seq !== renderSeq) return;
      session.profile = profile;
    } catch (err) {
      if (seq !== renderSeq || err.status === 401) return; // 401: already on the way to #/login
      shell = null;
      setChildren(app, h('div', { class: 'flex min-h-screen items-center justify-center p-4' }, h('div', { class: 'card bg-base-100 border border-base-300 w-full max-w-md' }, errorBlock(err, render))));
      return;
    }
  }

  if (session.profile.must_change_password) {
    if (name !== 'change-password') {
      navigate('change-password', { next: safeNext(window.location.hash) || undefined });
      return;
    }
    shell = null;
    cleanup = mountForced(app, ctx);
    return;
  }

  // The role decides what the console shows (the server enforces it anyway).
  document.documentElement.dataset.role = session.profile.role || 'viewer';
  const page = mayOpen(session.profile, name) ? PAGES[name] : null;
  if (!page) {
    // Unknown or empty route (including a stale #/change-password).
    window.location.replace('#/dashboard');
    return;
  }

  if (!shell) {
    shell = buildShell(session.profile, { onLogout: logout });
    setChildren(app, shell.root);
  }
  shell.setActive(PARENT[name] || name);
  shell.main.replaceChildren();
  window.scrollTo(0, 0);
  document.title = `${t(`nav.${name}`)} · gpt2api`;
  cleanup = page.mount(shell.main, ctx) || null;
}

async function start() {
  applyTheme();
  try {
    await initI18n();
  } catch {
    /* dictionaries failed to load: t() falls back to keys, still usable */
  }
  window.addEventListener('hashchange', render);
  // A language switch rebuilds everything so every string is re-translated.
  window.addEventListener('langchange', () => {
    shell = null;
    render();
  });
  render();
}

start();
