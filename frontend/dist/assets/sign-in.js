// "Sign in with OpenAI": adds an account without a file, in a dialog with two
// tabs. PKCE: open OpenAI's sign-in page in a new tab, then paste the address
// of the page that fails to load. Device code: show the code to type at
// OpenAI's page while the gateway polls; the console polls the flow's status.
// Flows still pending when the dialog closes are cancelled.

import { api, seg } from './api.js';
import { t, fmtDuration } from './i18n.js';
import { h, icon, setChildren, openModal, busy, field, spinner, copyText, toast } from './ui.js';
import { tokenTitle } from './status.js';

/** Seconds left until `iso`, at least 0. */
function secondsLeft(iso) {
  const left = Math.floor((new Date(iso).getTime() - Date.now()) / 1000);
  return Number.isFinite(left) ? Math.max(0, left) : 0;
}

function alertBox(kind, testid, ...children) {
  const cls = { success: 'alert-success', error: 'alert-error', info: 'alert-info' }[kind];
  const ic = { success: 'checkCircle', error: 'xCircle', info: 'info' }[kind];
  return h('div', { role: kind === 'error' ? 'alert' : 'status', class: `alert ${cls} alert-soft text-sm items-start`, testid }, icon(ic, 'h-5 w-5 shrink-0'), h('div', { class: 'min-w-0 break-words' }, children));
}

/** Opens the dialog; `onAdded(token)` runs for every account it adds. */
export function openSignIn({ onAdded }) {
  const flows = new Set(); // pending flow ids, cancelled on close
  const timers = new Set();
  let closed = false;

  const every = (fn, ms) => {
    const id = setInterval(fn, ms);
    timers.add(id);
    return () => {
      clearInterval(id);
      timers.delete(id);
    };
  };

  const forget = (id) => flows.delete(id);
  const cancelFlow = (id) => {
    forget(id);
    api.del(`/tokens/oauth/${seg(id)}`).catch(() => {});
  };

  // ---- shared: name and proxy ----------------------------------------------
  const nameInput = h('input', { class: 'input w-full', maxlength: '200', testid: 'signin-name', placeholder: t('signin.namePlaceholder') });
  const proxyInput = h('input', { class: 'input w-full font-mono text-sm', testid: 'signin-proxy', placeholder: 'socks5://127.0.0.1:1080', autocomplete: 'off' });
  const startBody = (method) => {
    const body = { method };
    if (nameInput.value.trim()) body.name = nameInput.value.trim();
    if (proxyInput.value.trim()) body.proxy_url = proxyInput.value.trim();
    return body;
  };
  const extras = h(
    'details',
    { class: 'collapse collapse-arrow border border-base-300 bg-base-100', testid: 'signin-options' },
    h('summary', { class: 'collapse-title text-sm font-medium min-h-0 py-3' }, t('signin.options')),
    h('div', { class: 'collapse-content grid gap-1 sm:grid-cols-2' }, field(t('signin.name'), nameInput), field(t('signin.proxy'), proxyInput, t('signin.proxyHint'))),
  );

  const added = (token) => {
    toast(t('signin.added', { name: tokenTitle(token) }));
    if (onAdded) onAdded(token);
  };
  const doneBox = (token, testid) => alertBox('success', testid, h('div', { class: 'font-medium' }, t('signin.added', { name: tokenTitle(token) })), token.email && token.email !== tokenTitle(token) ? h('div', { class: 'text-xs opacity-70' }, token.email) : null);

  // ---- PKCE ----------------------------------------------------------------
  const pkce = { id: null, url: null, expiresAt: null };
  const pkceLink = h('div', { class: 'text-xs text-base-content/60 hidden break-all', testid: 'signin-pkce-link' });
  const pkceCountdown = h('span', { class: 'text-xs tabular-nums text-base-content/60', testid: 'signin-pkce-countdown' });
  const pasteInput = h('textarea', { class: 'textarea w-full font-mono text-xs h-20', testid: 'signin-paste', placeholder: 'http://localhost:1455/auth/callback?code=…&state=…', spellcheck: 'false', autocomplete: 'off' });
  const pkceResult = h('div', { testid: 'signin-pkce-result', 'aria-live': 'polite' });
  const openBtn = h('button', { type: 'button', class: 'btn btn-primary w-full sm:w-auto', testid: 'signin-pkce-open' }, icon('link', 'h-4 w-4'), t('signin.open'));
  const submitBtn = h('button', { type: 'submit', class: 'btn btn-success w-full sm:w-auto', testid: 'signin-pkce-submit' }, icon('check', 'h-4 w-4'), t('signin.submit'));

  function resetPkce() {
    if (pkce.id) forget(pkce.id);
    pkce.id = null;
    pkce.url = null;
    pkce.expiresAt = null;
    pkceLink.classList.add('hidden');
    pkceCountdown.textContent = '';
  }

  function tickPkce() {
    if (!pkce.expiresAt) return;
    const left = secondsLeft(pkce.expiresAt);
    pkceCountdown.textContent = left ? t('signin.expiresIn', { d: fmtDuration(left, true) }) : t('signin.expired');
  }
  every(tickPkce, 1000);

  openBtn.addEventListener('click', async () => {
    setChildren(pkceResult);
    if (!pkce.id || !secondsLeft(pkce.expiresAt)) {
      resetPkce();
      const done = busy(openBtn);
      try {
        const res = await api.post('/tokens/oauth/start', startBody('pkce'));
        if (closed) return cancelFlow(res.flow_id);
        pkce.id = res.flow_id;
        pkce.url = res.authorize_url;
        pkce.expiresAt = res.expires_at;
        flows.add(res.flow_id);
      } catch (err) {
        if (err.status !== 401) setChildren(pkceResult, alertBox('error', 'signin-pkce-error', err.message));
        return;
      } finally {
        done();
      }
    }
    setChildren(pkceLink, t('signin.openLink'), ' ', h('a', { href: pkce.url, target: '_blank', rel: 'noopener noreferrer', class: 'link link-primary', testid: 'signin-pkce-href' }, t('signin.openLinkText')));
    pkceLink.classList.remove('hidden');
    tickPkce();
    window.open(pkce.url, '_blank', 'noopener,noreferrer');
    pasteInput.focus();
  });

  const pkceForm = h(
    'form',
    {
      class: 'flex flex-col gap-3',
      testid: 'signin-pkce-form',
      onsubmit: async (e) => {
        e.preventDefault();
        setChildren(pkceResult);
        const pasted = pasteInput.value.trim();
        if (!pkce.id) return setChildren(pkceResult, alertBox('error', 'signin-pkce-error', t('signin.openFirst')));
        if (!pasted) return setChildren(pkceResult, alertBox('error', 'signin-pkce-error', t('signin.pasteRequired')));
        const done = busy(submitBtn);
        try {
          const token = await api.post(`/tokens/oauth/${seg(pkce.id)}/callback`, { redirect_url: pasted });
          if (closed) return;
          resetPkce();
          pasteInput.value = '';
          setChildren(pkceResult, doneBox(token, 'signin-pkce-done'));
          added(token);
        } catch (err) {
          if (closed || err.status === 401) return;
          // A used, expired or unknown flow cannot be retried: the next "open" starts anew.
          if (['oauth_flow_expired', 'oauth_denied', 'oauth_exchange_failed', 'not_found'].includes(err.code) || err.status === 404) resetPkce();
          setChildren(pkceResult, alertBox('error', 'signin-pkce-error', h('div', { class: 'font-medium' }, t('signin.failed')), h('div', { testid: 'signin-pkce-reason' }, err.message)));
        } finally {
          done();
        }
      },
    },
    h(
      'ol',
      { class: 'list-decimal pl-5 text-sm flex flex-col gap-1', testid: 'signin-pkce-steps' },
      h('li', null, t('signin.step1')),
      h('li', null, t('signin.step2')),
      h('li', null, t('signin.step3')),
    ),
    h('div', { class: 'flex flex-wrap items-center gap-x-3 gap-y-1' }, openBtn, pkceCountdown),
    pkceLink,
    field(t('signin.pasteLabel'), pasteInput),
    h('div', { class: 'flex justify-end' }, submitBtn),
    pkceResult,
  );

  // ---- device code ---------------------------------------------------------
  const device = { id: null, stopPoll: null, stopTick: null };
  const deviceBody = h('div', { class: 'flex flex-col gap-3', testid: 'signin-device-body' });

  function stopDevice() {
    if (device.stopPoll) device.stopPoll();
    if (device.stopTick) device.stopTick();
    device.stopPoll = null;
    device.stopTick = null;
  }

  function deviceIdle(extra) {
    stopDevice();
    device.id = null;
    const startBtn = h('button', { type: 'button', class: 'btn btn-primary w-full sm:w-auto', testid: 'signin-device-start' }, icon('key', 'h-4 w-4'), t('signin.getCode'));
    startBtn.addEventListener('click', () => startDevice(startBtn));
    setChildren(deviceBody, h('p', { class: 'text-sm' }, t('signin.deviceIntro')), h('div', null, startBtn), extra || null);
  }

  async function startDevice(btn) {
    const done = busy(btn);
    let res;
    try {
      res = await api.post('/tokens/oauth/start', startBody('device'));
    } catch (err) {
      done();
      if (err.status !== 401) deviceIdle(alertBox('error', 'signin-device-error', err.message));
      return;
    }
    if (closed) return cancelFlow(res.flow_id);
    device.id = res.flow_id;
    flows.add(res.flow_id);
    showCode(res);
  }

  function showCode(res) {
    const codeEl = h('div', { class: 'font-mono text-3xl sm:text-4xl font-bold tracking-widest select-all break-all', testid: 'signin-device-code' }, res.user_code);
    const copyBtn = h('button', { type: 'button', class: 'btn btn-sm', testid: 'signin-device-copy' }, icon('copy', 'h-4 w-4'), t('signin.copy'));
    copyBtn.addEventListener('click', async () => {
      const ok = await copyText(res.user_code);
      toast(ok ? t('signin.copied') : t('keys.copyFailed'), ok ? 'success' : 'error');
    });
    const countdown = h('span', { class: 'tabular-nums', testid: 'signin-device-countdown' });
    const status = h('div', { class: 'flex items-center gap-2 text-sm', testid: 'signin-device-status', dataset: { status: 'pending' } }, spinner('loading-xs'), h('span', null, t('signin.waiting')), h('span', { class: 'text-base-content/60' }, '·'), countdown);
    const cancelBtn = h('button', { type: 'button', class: 'btn btn-ghost w-full sm:w-auto', testid: 'signin-device-cancel' }, t('signin.cancel'));
    cancelBtn.addEventListener('click', () => {
      if (device.id) cancelFlow(device.id);
      deviceIdle(alertBox('info', 'signin-device-cancelled', t('signin.cancelled')));
    });
    setChildren(
      deviceBody,
      h('p', { class: 'text-sm' }, t('signin.deviceStep1'), ' ', h('a', { href: res.verification_url, target: '_blank', rel: 'noopener noreferrer', class: 'link link-primary break-all', testid: 'signin-device-link' }, res.verification_url)),
      h('p', { class: 'text-sm' }, t('signin.deviceStep2')),
      h('div', { class: 'flex flex-wrap items-center justify-between gap-3 rounded-box bg-base-200 p-4' }, codeEl, copyBtn),
      status,
      h('div', { class: 'flex justify-end' }, cancelBtn),
    );
    const tick = () => {
      const left = secondsLeft(res.expires_at);
      countdown.textContent = t('signin.expiresIn', { d: fmtDuration(left, true) });
    };
    tick();
    device.stopTick = every(tick, 1000);
    const id = res.flow_id;
    let inFlight = false;
    device.stopPoll = every(async () => {
      if (inFlight || device.id !== id) return;
      inFlight = true;
      try {
        const st = await api.get(`/tokens/oauth/${seg(id)}`);
        if (closed || device.id !== id || st.status === 'pending') return;
        forget(id);
        if (st.status === 'done' && st.token) {
          deviceIdle(doneBox(st.token, 'signin-device-done'));
          added(st.token);
        } else {
          const reason = (st.error && st.error.message) || t(st.status === 'expired' ? 'signin.expired' : 'signin.failed');
          deviceIdle(alertBox('error', 'signin-device-error', h('div', { class: 'font-medium' }, t(st.status === 'expired' ? 'signin.expired' : 'signin.failed')), h('div', null, reason)));
        }
      } catch (err) {
        if (closed || device.id !== id || err.status === 401) return;
        forget(id);
        deviceIdle(alertBox('error', 'signin-device-error', err.message));
      } finally {
        inFlight = false;
      }
    }, Math.max(1, Number(res.interval_seconds) || 5) * 1000);
  }
  deviceIdle();

  // ---- tabs ----------------------------------------------------------------
  const panels = { pkce: pkceForm, device: deviceBody };
  const tabs = {};
  const select = (name) => {
    for (const [k, tab] of Object.entries(tabs)) {
      const on = k === name;
      tab.classList.toggle('tab-active', on);
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      panels[k].classList.toggle('hidden', !on);
    }
  };
  for (const [name, label] of [['pkce', t('signin.tabPkce')], ['device', t('signin.tabDevice')]]) {
    tabs[name] = h('button', { type: 'button', role: 'tab', class: 'tab', testid: `signin-tab-${name}`, onclick: () => select(name) }, label);
  }
  select('pkce');

  openModal({
    title: t('signin.title'),
    testid: 'signin-dialog',
    content: h(
      'div',
      { class: 'flex flex-col gap-4' },
      h('div', { role: 'tablist', class: 'tabs tabs-box w-full grid grid-cols-2' }, tabs.pkce, tabs.device),
      extras,
      panels.pkce,
      panels.device,
    ),
    onClose: () => {
      closed = true;
      for (const id of timers) clearInterval(id);
      timers.clear();
      for (const id of Array.from(flows)) cancelFlow(id);
    },
  });
}
