// Account page, for every role: the password, and the optional second
// factor (TOTP). Enrolment shows a QR code drawn here in the browser (the
// secret never leaves for another service), then the recovery codes once.

import { api } from './api.js';
import { t } from './i18n.js';
import { h, icon, setChildren, toast, pageHeader, field, busy } from './ui.js';
import { passwordForm } from './page-password.js';

/** The QR code of a text as an <svg> element. */
async function qrCode(text) {
  const { renderSVG } = await import('./uqr.js');
  const doc = new DOMParser().parseFromString(renderSVG(text, { border: 2 }), 'image/svg+xml');
  const svg = document.importNode(doc.documentElement, true);
  svg.setAttribute('class', 'h-48 w-48 bg-white rounded');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', t('totp.qr'));
  return svg;
}

export function mount(el, { session }) {
  let disposed = false;
  const totpBody = h('div', { class: 'card-body gap-3', testid: 'totp-card' });

  setChildren(
    el,
    pageHeader(t('nav.account'), session.profile ? `${session.profile.username} · ${t(`role.${session.profile.role}`)}` : ''),
    h(
      'div',
      { class: 'grid gap-6 lg:grid-cols-2' },
      h('div', { class: 'card bg-base-100 border border-base-300' }, h('div', { class: 'card-body' }, h('h2', { class: 'card-title text-base' }, icon('lock', 'h-5 w-5'), t('password.title')), passwordForm({}))),
      h('div', { class: 'card bg-base-100 border border-base-300' }, totpBody),
    ),
  );

  const title = () => h('h2', { class: 'card-title text-base' }, icon('key', 'h-5 w-5'), t('totp.title'));
  const errorBox = () => h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'totp-error' });
  const fail = (box, err) => {
    box.textContent = err.message;
    box.classList.remove('hidden');
  };

  async function refresh() {
    try {
      session.profile = await api.get('/profile');
    } catch {
      /* the 401 handler takes over */
    }
    if (!disposed) render();
  }

  function render() {
    if (session.profile && session.profile.totp_enabled) renderEnabled();
    else renderOff();
  }

  function renderOff() {
    const start = h('button', { class: 'btn btn-primary', testid: 'totp-setup' }, icon('plus', 'h-4 w-4'), t('totp.setup'));
    const box = errorBox();
    start.addEventListener('click', async () => {
      const done = busy(start);
      try {
        const setup = await api.post('/totp/setup', {});
        if (!disposed) await renderEnrol(setup);
      } catch (err) {
        done();
        fail(box, err);
      }
    });
    setChildren(totpBody, title(), h('p', { class: 'text-sm text-base-content/70', testid: 'totp-status', dataset: { enabled: 'false' } }, t('totp.off')), box, h('div', null, start));
  }

  async function renderEnrol(setup) {
    const code = h('input', { class: 'input w-40 tabular-nums', testid: 'totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6' });
    const box = errorBox();
    const enable = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'totp-enable' }, icon('check', 'h-4 w-4'), t('totp.enable'));
    const form = h(
      'form',
      {
        class: 'flex flex-col gap-2',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          const done = busy(enable);
          try {
            const res = await api.post('/totp/enable', { code: code.value.trim() });
            if (disposed) return;
            if (session.profile) session.profile.totp_enabled = true;
            renderCodes(res.recovery_codes);
          } catch (err) {
            done();
            fail(box, err);
          }
        },
      },
      box,
      field(t('totp.code'), code, t('totp.codeHint')),
      h('div', null, enable),
    );
    setChildren(
      totpBody,
      title(),
      h('p', { class: 'text-sm text-base-content/70' }, t('totp.scan')),
      h('div', { class: 'flex flex-wrap items-center gap-4' }, h('div', { testid: 'totp-qr' }, await qrCode(setup.otpauth_uri)), h('div', { class: 'min-w-0' }, h('div', { class: 'text-xs text-base-content/60' }, t('totp.secret')), h('code', { class: 'break-all select-all', testid: 'totp-secret' }, setup.secret))),
      form,
    );
    setTimeout(() => code.focus(), 0);
  }

  function renderCodes(codes) {
    setChildren(
      totpBody,
      title(),
      h('div', { role: 'status', class: 'alert alert-warning text-sm' }, icon('alert', 'h-4 w-4'), t('totp.codesOnce')),
      h('ul', { class: 'grid grid-cols-2 gap-1 font-mono text-sm', testid: 'totp-recovery-codes' }, codes.map((c) => h('li', { class: 'select-all' }, c))),
      h('div', null, h('button', { class: 'btn', testid: 'totp-codes-done', onclick: () => refresh() }, t('common.close'))),
    );
    toast(t('totp.enabled'));
  }

  function renderEnabled() {
    const secret = h('input', { class: 'input w-full', testid: 'totp-disable-input', type: 'password', autocomplete: 'off', placeholder: t('totp.disablePlaceholder') });
    const box = errorBox();
    const disable = h('button', { type: 'submit', class: 'btn btn-error btn-outline', testid: 'totp-disable' }, icon('power', 'h-4 w-4'), t('totp.disable'));
    const form = h(
      'form',
      {
        class: 'flex flex-col gap-2',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          const value = secret.value.trim();
          const isCode = /^\d{6}$/.test(value) || /^[a-z0-9]{5}-?[a-z0-9]{5}$/i.test(value);
          const done = busy(disable);
          try {
            await api.post('/totp/disable', isCode ? { code: value } : { password: secret.value });
            toast(t('totp.disabled'));
            refresh();
          } catch (err) {
            done();
            fail(box, err);
          }
        },
      },
      box,
      field(t('totp.disableWith'), secret),
      h('div', null, disable),
    );
    setChildren(totpBody, title(), h('p', { class: 'text-sm text-success', testid: 'totp-status', dataset: { enabled: 'true' } }, t('totp.on')), form);
  }

  render();
  return () => {
    disposed = true;
  };
}

