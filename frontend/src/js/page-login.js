// Sign-in page. Errors are shown inline: wrong password, and too many
// attempts with a live countdown taken from the Retry-After header.

import { api } from './api.js';
import { t } from './i18n.js';
import { h, icon, setChildren, spinner } from './ui.js';
import { safeNext } from './router.js';
import { logo, langButton, themeMenu } from './layout.js';

/** The centred card layout shared by the login and forced password pages. */
export function authFrame(...content) {
  return h(
    'div',
    { class: 'flex min-h-screen flex-col' },
    h('div', { class: 'flex items-center justify-end gap-1 p-3' }, langButton(), themeMenu()),
    h(
      'div',
      { class: 'flex flex-1 items-start justify-center px-4 pb-16 pt-4 sm:items-center' },
      h('div', { class: 'w-full max-w-sm' }, h('div', { class: 'mb-6 flex justify-center' }, logo('text-2xl')), ...content),
    ),
  );
}

export function mount(app, { params, session, goAfterLogin }) {
  let disposed = false;
  let countdown = null;
  const next = safeNext(params.get('next'));

  const username = h('input', { class: 'input w-full', name: 'username', autocomplete: 'username', required: true, testid: 'login-username', autofocus: true, 'aria-label': t('login.username') });
  const password = h('input', { class: 'input w-full', type: 'password', name: 'password', autocomplete: 'current-password', required: true, testid: 'login-password', 'aria-label': t('login.password') });
  const reveal = h(
    'button',
    { type: 'button', class: 'btn btn-ghost btn-xs btn-square', tabindex: '-1', 'aria-label': t('login.showPassword'), title: t('login.showPassword'), onclick: () => (password.type = password.type === 'password' ? 'text' : 'password') },
    icon('eye', 'h-4 w-4'),
  );
  const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'login-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary w-full', testid: 'login-submit' }, t('login.submit'));

  const notice = params.get('expired') ? h('div', { role: 'status', class: 'alert alert-info alert-soft text-sm', testid: 'login-expired' }, icon('info', 'h-4 w-4'), t('login.expired')) : null;

  function showError(msg, code) {
    errorBox.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { testid: 'login-error-text' }, msg));
    errorBox.dataset.code = code || '';
    errorBox.classList.remove('hidden');
  }
  function clearError() {
    errorBox.classList.add('hidden');
    errorBox.replaceChildren();
  }

  function startCountdown(seconds) {
    clearInterval(countdown);
    let left = Math.max(1, seconds || 60);
    const render = () => {
      showError(t('login.tooMany', { s: left }), 'too_many_attempts');
      submit.disabled = true;
      submit.textContent = t('login.wait', { s: left });
    };
    render();
    countdown = setInterval(() => {
      left -= 1;
      if (disposed) return clearInterval(countdown);
      if (left <= 0) {
        clearInterval(countdown);
        submit.disabled = false;
        submit.textContent = t('login.submit');
        showError(t('login.tryAgainNow'), 'too_many_attempts');
        return;
      }
      render();
    }, 1000);
  }

  const form = h(
    'form',
    {
      class: 'card-body gap-4',
      testid: 'login-form',
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        if (submit.disabled) return;
        clearError();
        if (!username.value.trim() || !password.value) {
          showError(t('login.required'), 'required');
          return;
        }
        submit.disabled = true;
        submit.replaceChildren(spinner('loading-sm'), t('login.signingIn'));
        try {
          const res = await api.post('/login', { username: username.value.trim(), password: password.value });
          if (disposed) return;
          if (res && res.totp_required) {
            askCode(res.challenge);
            return;
          }
          session.profile = res && res.user ? { ...res.user } : null;
          goAfterLogin(next);
        } catch (err) {
          if (disposed) return;
          submit.disabled = false;
          submit.textContent = t('login.submit');
          if (err.status === 429) {
            startCountdown(err.retryAfter);
          } else if (err.status === 401) {
            showError(t('login.invalid'), err.code);
            password.select();
          } else {
            showError(err.message, err.code);
          }
        }
      },
    },
    h('h1', { class: 'text-xl font-semibold' }, t('login.title')),
    h('p', { class: 'text-sm text-base-content/60 -mt-2' }, t('login.subtitle')),
    notice,
    errorBox,
    h('label', { class: 'flex flex-col gap-1' }, h('span', { class: 'text-sm font-medium' }, t('login.username')), username),
    h(
      'label',
      { class: 'flex flex-col gap-1' },
      h('span', { class: 'text-sm font-medium' }, t('login.password')),
      h('div', { class: 'relative' }, password, h('div', { class: 'absolute inset-y-0 right-1 flex items-center z-10' }, reveal)),
    ),
    submit,
  );

  // The second step when the admin has TOTP: a code from the app, or a
  // recovery code, answers the challenge the password earned.
  function askCode(challenge) {
    const code = h('input', { class: 'input w-full tabular-nums', name: 'code', autocomplete: 'one-time-code', testid: 'login-totp-code', 'aria-label': t('login.totpCode') });
    const codeError = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'login-totp-error' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary w-full', testid: 'login-totp-submit' }, t('login.submit'));
    const step = h(
      'form',
      {
        class: 'card-body gap-4',
        testid: 'login-totp-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          send.disabled = true;
          try {
            const res = await api.post('/login/totp', { challenge, code: code.value.trim() });
            if (disposed) return;
            session.profile = res && res.user ? { ...res.user } : null;
            goAfterLogin(next);
          } catch (err) {
            if (disposed) return;
            send.disabled = false;
            if (err.code === 'invalid_challenge') {
              // Expired or used: start again from the password.
              setChildren(card, form);
              submit.disabled = false;
              submit.textContent = t('login.submit');
              showError(err.message, err.code);
              return;
            }
            codeError.textContent = err.status === 429 ? t('login.tooMany', { s: err.retryAfter || 60 }) : err.message;
            codeError.classList.remove('hidden');
            code.select();
          }
        },
      },
      h('h1', { class: 'text-xl font-semibold' }, t('login.totpTitle')),
      h('p', { class: 'text-sm text-base-content/60 -mt-2' }, t('login.totpText')),
      codeError,
      code,
      send,
    );
    setChildren(card, step);
    setTimeout(() => code.focus(), 0);
  }

  const card = h('div', { class: 'card bg-base-100 shadow-xl border border-base-300' }, form);
  setChildren(app, authFrame(card, h('p', { class: 'mt-6 text-center text-xs text-base-content/50' }, t('login.footer'))));
  document.title = `${t('login.title')} · gpt2api`;
  setTimeout(() => username.focus(), 0);

  // Already signed in (e.g. the page was reloaded on #/login): go on.
  api
    .get('/profile')
    .then((p) => {
      if (disposed || username.value || password.value) return;
      session.profile = p;
      goAfterLogin(next);
    })
    .catch(() => {});

  return () => {
    disposed = true;
    clearInterval(countdown);
  };
}
