// Settings: runtime settings (applied by the server at once, no restart),
// system information, and the admin's password.

import { api } from './api.js';
import { t, fmtDuration } from './i18n.js';
import { h, icon, setChildren, pageHeader, loadingBlock, errorBlock, toast, busy, field } from './ui.js';
import { passwordForm } from './page-password.js';

const STRATEGIES = ['quota_aware', 'round_robin', 'least_used', 'fill_first'];
// The pool's settings, each shown when the server offers it: [key, kind, label, hint].
const POOL = [
  ['quota_ceiling_percent', 'percent', 'settings.ceiling', 'settings.ceilingHint'],
  ['affinity_ttl_seconds', 'seconds', 'settings.affinityTtl', 'settings.affinityTtlHint'],
  ['usage_probe_interval_seconds', 'seconds', 'settings.probeInterval', 'settings.probeIntervalHint'],
  ['refresh_wait_seconds', 'seconds', 'settings.refreshWait', 'settings.refreshWaitHint'],
  ['breaker_failures', 'count', 'settings.breakerFailures', 'settings.breakerFailuresHint'],
  ['breaker_window_seconds', 'seconds', 'settings.breakerWindow', 'settings.breakerWindowHint'],
  ['breaker_open_seconds', 'seconds', 'settings.breakerOpen', 'settings.breakerOpenHint'],
];
const KNOWN = ['strategy', 'max_retries', 'refresh_lead_seconds', 'log_retention_days', 'transient_cooldown_seconds', 'forbidden_cooldown_seconds', ...POOL.map((p) => p[0])];
// Whole-number settings: checked in the form before they are sent.
const INTEGERS = ['max_retries', 'refresh_lead_seconds', 'log_retention_days', 'transient_cooldown_seconds', 'forbidden_cooldown_seconds', ...POOL.filter((p) => p[1] !== 'percent').map((p) => p[0])];

export function mount(el) {
  let disposed = false;
  let original = null;
  const controls = new Map(); // key -> {el, read(), type}

  const settingsBody = h('div', null, loadingBlock());
  const systemBody = h('div', null, loadingBlock());

  setChildren(
    el,
    pageHeader(t('nav.settings'), t('settings.subtitle')),
    h(
      'div',
      { class: 'grid grid-cols-1 gap-6 lg:grid-cols-3' },
      h(
        'section',
        { class: 'card bg-base-100 shadow-sm border border-base-300 lg:col-span-2 self-start', testid: 'settings-card' },
        h('div', { class: 'card-body' }, h('h2', { class: 'card-title text-base' }, icon('settings', 'h-5 w-5'), t('settings.runtime')), h('p', { class: 'text-sm text-base-content/60 -mt-1' }, t('settings.runtimeHint')), settingsBody),
      ),
      h(
        'div',
        { class: 'flex flex-col gap-6' },
        h('section', { class: 'card bg-base-100 shadow-sm border border-base-300', testid: 'system-card' }, h('div', { class: 'card-body' }, h('h2', { class: 'card-title text-base' }, icon('server', 'h-5 w-5'), t('settings.system')), systemBody)),
        h(
          'section',
          { class: 'card bg-base-100 shadow-sm border border-base-300', testid: 'notifications-card' },
          h(
            'div',
            { class: 'card-body' },
            h('h2', { class: 'card-title text-base' }, icon('bell', 'h-5 w-5'), t('hooks.cardTitle')),
            h('p', { class: 'text-sm text-base-content/70' }, t('hooks.cardText')),
            h('div', { class: 'card-actions justify-end' }, h('a', { class: 'btn btn-sm btn-primary', href: '#/notifications', testid: 'notifications-link' }, t('hooks.open'))),
          ),
        ),
        h(
          'section',
          { class: 'card bg-base-100 shadow-sm border border-base-300', testid: 'password-card' },
          h('div', { class: 'card-body' }, h('h2', { class: 'card-title text-base' }, icon('lock', 'h-5 w-5'), t('password.title')), passwordForm({})),
        ),
      ),
    ),
  );

  // ---- runtime settings ---------------------------------------------------
  function numberInput(key, value, attrs = {}) {
    return h('input', { type: 'number', class: 'input w-full', step: '1', min: '0', inputmode: 'numeric', value: value === null || value === undefined ? '' : String(value), testid: `setting-${key}`, name: key, ...attrs });
  }

  function buildForm(s) {
    controls.clear();
    const rows = [];
    const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'settings-error' });

    // strategy
    const options = STRATEGIES.includes(s.strategy) || s.strategy === undefined ? STRATEGIES : [...STRATEGIES, s.strategy];
    const strategyHint = h('p', { class: 'label whitespace-normal' });
    const strategy = h('select', { class: 'select w-full', testid: 'setting-strategy', name: 'strategy' }, options.map((o) => h('option', { value: o, selected: o === s.strategy }, STRATEGIES.includes(o) ? t(`strategy.${o}`) : o)));
    const describe = () => (strategyHint.textContent = STRATEGIES.includes(strategy.value) ? t(`strategy.${strategy.value}.hint`) : '');
    strategy.addEventListener('change', describe);
    describe();
    controls.set('strategy', { el: strategy, read: () => strategy.value });
    rows.push(h('fieldset', { class: 'fieldset sm:col-span-2' }, h('legend', { class: 'fieldset-legend' }, t('settings.strategy')), strategy, strategyHint));

    const retries = numberInput('max_retries', s.max_retries, { max: '20' });
    controls.set('max_retries', { el: retries, read: () => intOrRaw(retries.value) });
    rows.push(field(t('settings.maxRetries'), retries, t('settings.maxRetriesHint')));

    // A number of seconds, with a hint that reads it as a duration.
    const seconds = (key, label, hintKey) => {
      const input = numberInput(key, s[key]);
      const hint = h('p', { class: 'label whitespace-normal' });
      const describe = () => (hint.textContent = t(hintKey, { d: input.value === '' ? '—' : fmtDuration(Number(input.value)) }));
      input.addEventListener('input', describe);
      describe();
      controls.set(key, { el: input, read: () => intOrRaw(input.value) });
      return h('fieldset', { class: 'fieldset' }, h('legend', { class: 'fieldset-legend' }, label), input, hint);
    };

    rows.push(seconds('refresh_lead_seconds', t('settings.refreshLead'), 'settings.refreshLeadHint'));

    // The cooldowns are offered by newer servers only.
    if (s.transient_cooldown_seconds !== undefined) rows.push(seconds('transient_cooldown_seconds', t('settings.transientCooldown'), 'settings.transientCooldownHint'));
    if (s.forbidden_cooldown_seconds !== undefined) rows.push(seconds('forbidden_cooldown_seconds', t('settings.forbiddenCooldown'), 'settings.forbiddenCooldownHint'));

    const retention = numberInput('log_retention_days', s.log_retention_days);
    controls.set('log_retention_days', { el: retention, read: () => intOrRaw(retention.value) });
    rows.push(field(t('settings.retention'), retention, t('settings.retentionHint')));

    // The pool: where conversations go, when accounts rest. Offered by newer servers only.
    const poolRows = [];
    for (const [key, kind, label, hintKey] of POOL) {
      if (s[key] === undefined) continue;
      if (kind === 'seconds') {
        poolRows.push(seconds(key, t(label), hintKey));
      } else if (kind === 'percent') {
        const input = numberInput(key, s[key], { step: '0.1', min: '1', max: '100', inputmode: 'decimal' });
        controls.set(key, { el: input, read: () => (input.value.trim() === '' ? null : Number(input.value)) });
        poolRows.push(field(t(label), input, t(hintKey)));
      } else {
        const input = numberInput(key, s[key], { min: '1' });
        controls.set(key, { el: input, read: () => intOrRaw(input.value) });
        poolRows.push(field(t(label), input, t(hintKey)));
      }
    }

    // Any further settings the server offers, shown by their JSON type.
    const extras = Object.keys(s).filter((k) => !KNOWN.includes(k)).sort();
    const extraRows = extras.map((key) => {
      const v = s[key];
      let control;
      let read;
      if (typeof v === 'boolean') {
        const state = h('span', { class: 'text-sm' }, v ? t('common.on') : t('common.off'));
        control = h('input', { type: 'checkbox', class: 'toggle toggle-primary', checked: v, testid: `setting-${key}`, name: key, onchange: () => (state.textContent = control.checked ? t('common.on') : t('common.off')) });
        read = () => control.checked;
        controls.set(key, { el: control, read });
        return h('label', { class: 'fieldset' }, h('span', { class: 'fieldset-legend font-mono' }, key), h('span', { class: 'flex items-center gap-3' }, control, state));
      }
      if (typeof v === 'number') {
        control = numberInput(key, v, { step: 'any', min: null });
        read = () => (control.value.trim() === '' ? null : Number(control.value));
      } else if (typeof v === 'string' || v === null) {
        control = h('input', { class: 'input w-full', value: v ?? '', testid: `setting-${key}`, name: key });
        read = () => control.value;
      } else {
        control = h('textarea', { class: 'textarea w-full font-mono text-xs', rows: '3', testid: `setting-${key}`, name: key }, JSON.stringify(v, null, 2));
        read = () => {
          try {
            return JSON.parse(control.value);
          } catch {
            return control.value;
          }
        };
      }
      controls.set(key, { el: control, read });
      return h('fieldset', { class: 'fieldset' }, h('legend', { class: 'fieldset-legend font-mono' }, key), control);
    });

    const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'settings-save', disabled: true }, icon('check', 'h-4 w-4'), t('common.save'));
    const resetBtn = h('button', { type: 'button', class: 'btn btn-ghost', testid: 'settings-reset', disabled: true, onclick: () => { setChildren(settingsBody, buildForm(original)); } }, t('settings.discard'));

    const form = h(
      'form',
      {
        testid: 'settings-form',
        novalidate: true,
        oninput: () => refreshDirty(),
        onchange: () => refreshDirty(),
        onsubmit: async (e) => {
          e.preventDefault();
          errorBox.classList.add('hidden');
          const patch = diff();
          if (!Object.keys(patch).length) return;
          for (const [k, v] of Object.entries(patch)) {
            if (typeof v === 'string' && INTEGERS.includes(k)) {
              return showError(t('settings.badNumber', { field: k }), k);
            }
          }
          const done = busy(save);
          try {
            const updated = await api.patch('/settings', patch);
            if (disposed) return;
            original = updated && typeof updated === 'object' ? updated : { ...original, ...patch };
            setChildren(settingsBody, buildForm(original));
            toast(t('settings.saved'));
          } catch (err) {
            done();
            if (err.status !== 401) showError(err.message, Object.keys(patch).find((k) => err.message.includes(k)));
          }
        },
      },
      errorBox,
      h('div', { class: 'grid grid-cols-1 gap-x-6 sm:grid-cols-2' }, rows),
      poolRows.length ? h('div', { class: 'divider text-xs text-base-content/50' }, t('settings.pool')) : null,
      poolRows.length ? h('div', { class: 'grid grid-cols-1 gap-x-6 sm:grid-cols-2', testid: 'settings-pool' }, poolRows) : null,
      extraRows.length ? h('div', { class: 'divider text-xs text-base-content/50' }, t('settings.more')) : null,
      extraRows.length ? h('div', { class: 'grid grid-cols-1 gap-x-6 sm:grid-cols-2', testid: 'settings-extra' }, extraRows) : null,
      h('div', { class: 'mt-4 flex flex-wrap items-center justify-end gap-2' }, resetBtn, save),
    );

    function showError(msg, key) {
      errorBox.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, msg));
      errorBox.classList.remove('hidden');
      const c = key && controls.get(key);
      if (c && c.el) {
        c.el.classList.add('input-error', 'select-error');
        c.el.focus();
      }
    }

    function refreshDirty() {
      const dirty = Object.keys(diff()).length > 0;
      save.disabled = !dirty;
      resetBtn.disabled = !dirty;
      for (const c of controls.values()) if (c.el) c.el.classList.remove('input-error', 'select-error');
    }
    return form;
  }

  function intOrRaw(v) {
    const s = String(v).trim();
    if (s === '') return null;
    return /^\d+$/.test(s) ? Number(s) : s;
  }

  function diff() {
    const out = {};
    for (const [key, c] of controls) {
      const v = c.read();
      if (JSON.stringify(v) !== JSON.stringify(original[key])) out[key] = v;
    }
    return out;
  }

  async function loadSettings() {
    setChildren(settingsBody, loadingBlock());
    try {
      const s = await api.get('/settings');
      if (disposed) return;
      original = s || {};
      setChildren(settingsBody, buildForm(original));
    } catch (err) {
      if (disposed || err.status === 401) return;
      setChildren(settingsBody, errorBlock(err, loadSettings));
    }
  }

  // ---- system information -------------------------------------------------
  let uptimeBase = null;
  const uptimeEl = h('span', { testid: 'system-uptime' }, '—');
  const tickUptime = () => {
    if (uptimeBase) uptimeEl.textContent = fmtDuration(uptimeBase.seconds + (Date.now() - uptimeBase.at) / 1000);
  };
  const uptimeTimer = setInterval(tickUptime, 1000);

  function infoRow(ic, label, value) {
    return h('div', { class: 'flex items-start gap-3 py-2' }, h('span', { class: 'mt-0.5 text-base-content/50' }, icon(ic, 'h-4 w-4')), h('div', { class: 'min-w-0 flex-1' }, h('div', { class: 'text-xs text-base-content/60' }, label), h('div', { class: 'font-medium break-all' }, value)));
  }

  async function loadSystem() {
    setChildren(systemBody, loadingBlock());
    let sys;
    try {
      sys = await api.get('/system');
    } catch (err) {
      if (disposed || err.status === 401) return;
      // Older servers without /admin/system: take what the overview has.
      try {
        const o = await api.get('/stats/overview');
        sys = { version: o.version, uptime_seconds: o.uptime_seconds };
      } catch {
        if (!disposed) setChildren(systemBody, errorBlock(err, loadSystem));
        return;
      }
    }
    if (disposed) return;
    uptimeBase = Number.isFinite(Number(sys.uptime_seconds)) ? { seconds: Number(sys.uptime_seconds), at: Date.now() } : null;
    tickUptime();
    const db = sys.database ? h('span', { class: 'badge badge-outline', testid: 'system-database' }, sys.database === 'sqlite' ? 'SQLite' : sys.database === 'postgres' ? 'PostgreSQL' : String(sys.database)) : h('span', { testid: 'system-database' }, '—');
    setChildren(
      systemBody,
      h(
        'div',
        { class: 'divide-y divide-base-300' },
        infoRow('info', t('settings.version'), h('span', { testid: 'system-version' }, sys.version ? `v${sys.version}` : '—')),
        infoRow('database', t('settings.database'), db),
        infoRow('clock', t('settings.uptime'), uptimeEl),
        infoRow('link', t('settings.upstream'), h('code', { class: 'text-sm', testid: 'system-upstream' }, sys.upstream_base_url || '—')),
      ),
    );
  }

  loadSettings();
  loadSystem();

  return () => {
    disposed = true;
    clearInterval(uptimeTimer);
  };
}
