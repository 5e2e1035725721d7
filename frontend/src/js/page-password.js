// Change-password form, used both on the Settings page and as the forced
// step after signing in with an initial password (must_change_password).

import { api } from './api.js';
import { t } from './i18n.js';
import { h, icon, setChildren, toast, busy, field } from './ui.js';
import { authFrame } from './page-login.js';

/** Builds the form; onDone runs after the server accepted the new password. */
export function passwordForm({ onDone, submitLabel }) {
  const mk = (testid, autocomplete, name) => h('input', { type: 'password', class: 'input w-full', testid, autocomplete, name, required: true });
  const current = mk('cp-current', 'current-password', 'current_password');
  const next = mk('cp-new', 'new-password', 'new_password');
  const confirm = mk('cp-confirm', 'new-password', 'confirm_password');
  const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'cp-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'cp-submit' }, icon('lock', 'h-4 w-4'), submitLabel || t('password.submit'));

  const showError = (msg) => {
    errorBox.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, msg));
    errorBox.classList.remove('hidden');
  };

  const form = h(
    'form',
    {
      class: 'flex flex-col gap-1',
      testid: 'change-password-form',
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        errorBox.classList.add('hidden');
        if (!current.value || !next.value) return showError(t('password.required'));
        if (next.value !== confirm.value) return showError(t('password.mismatch'));
        if (next.value === current.value) return showError(t('password.same'));
        const done = busy(submit);
        try {
          await api.post('/change-password', { current_password: current.value, new_password: next.value });
          current.value = next.value = confirm.value = '';
          toast(t('password.changed'));
          done();
          if (onDone) await onDone();
        } catch (err) {
          done();
          if (err.status === 401 && err.code === 'invalid_credentials') showError(t('password.wrongCurrent'));
          else if (err.status !== 401) showError(err.message);
        }
      },
    },
    errorBox,
    field(t('password.current'), current),
    field(t('password.new'), next, t('password.hint')),
    field(t('password.confirm'), confirm),
    h('div', { class: 'mt-3' }, submit),
  );
  return form;
}

/** The forced step: nothing else is reachable until the password is changed. */
export function mountForced(app, { session, goAfterLogin, params, logout }) {
  const form = passwordForm({
    submitLabel: t('password.submitContinue'),
    onDone: async () => {
      try {
        session.profile = await api.get('/profile');
      } catch {
        return;
      }
      session.profile.must_change_password = false;
      goAfterLogin(params.get('next'));
    },
  });
  setChildren(
    app,
    authFrame(
      h(
        'div',
        { class: 'card bg-base-100 shadow-xl border border-base-300', testid: 'forced-password' },
        h(
          'div',
          { class: 'card-body gap-3' },
          h('h1', { class: 'text-xl font-semibold' }, t('password.forcedTitle')),
          h('div', { role: 'status', class: 'alert alert-warning text-sm' }, icon('alert', 'h-4 w-4'), t('password.forcedText')),
          form,
          h('button', { type: 'button', class: 'btn btn-ghost btn-sm mt-2', testid: 'logout-button', onclick: logout }, icon('logout', 'h-4 w-4'), t('topbar.logout')),
        ),
      ),
    ),
  );
  document.title = `${t('password.forcedTitle')} · gpt2api`;
  return null;
}
