// Notifications (under Settings): webhooks that hear of accounts needing a
// new sign-in, refresh failures, usage near a limit, the pool running dry and
// recovering, and keys hitting their limits. List, create (the signing secret
// is shown once), edit, enable / disable, delete, send a test, and each
// webhook's deliveries with their outcome.

import { api, seg } from './api.js';
import { t, fmtDateTime, fmtRelative } from './i18n.js';
import { h, icon, setChildren, pageHeader, pager, fullRow, loadingBlock, emptyBlock, errorBlock, toast, toastError, openModal, confirmDialog, copyText, busy, field } from './ui.js';

export const EVENTS = ['account.needs_relogin', 'account.refresh_failed', 'account.limit_near', 'pool.exhausted', 'pool.recovered', 'key.limit_reached'];
const COLS = 5;
const STATUS_BADGE = { delivered: 'badge-success', pending: 'badge-warning', failed: 'badge-error' };

export function mount(el) {
  let disposed = false;
  let seq = 0;
  // The webhook whose deliveries are shown, and their page.
  const shown = { hook: null, page: 1, pageSize: 20, timer: null };

  const tbody = h('tbody', { testid: 'webhooks-tbody' });
  const deliveries = h('div', { testid: 'deliveries-panel' });

  setChildren(
    el,
    pageHeader(
      t('nav.notifications'),
      t('hooks.subtitle'),
      h('a', { class: 'btn btn-ghost', href: '#/settings', testid: 'hooks-back' }, t('hooks.back')),
      h('button', { class: 'btn btn-primary', testid: 'webhook-create', onclick: () => openForm(null) }, icon('plus'), t('hooks.create')),
    ),
    h(
      'div',
      { class: 'card bg-base-100 shadow-sm border border-base-300' },
      h(
        'div',
        { class: 'overflow-x-auto' },
        h(
          'table',
          { class: 'table table-sm md:table-md', testid: 'webhooks-table' },
          h('thead', null, h('tr', null, [t('hooks.col.name'), t('hooks.col.events'), t('hooks.col.enabled'), t('hooks.col.created'), ''].map((c, i) => h('th', { class: i === COLS - 1 ? 'text-right' : '' }, c)))),
          tbody,
        ),
      ),
    ),
    deliveries,
  );

  async function load() {
    const my = ++seq;
    setChildren(tbody, fullRow(COLS, loadingBlock()));
    try {
      const res = await api.get('/webhooks', { page: 1, page_size: 200 });
      if (disposed || my !== seq) return;
      const rows = res.data || [];
      setChildren(tbody, rows.length ? rows.map(row) : fullRow(COLS, emptyBlock(t('hooks.empty'), t('hooks.emptyHint'), 'bell')));
      if (shown.hook && !rows.some((r) => r.id === shown.hook.id)) hideDeliveries();
    } catch (err) {
      if (disposed || my !== seq || err.status === 401) return;
      setChildren(tbody, fullRow(COLS, errorBlock(err, load)));
    }
  }

  function row(w) {
    const toggle = h('input', {
      type: 'checkbox',
      class: 'toggle toggle-sm toggle-success',
      checked: !!w.is_enabled,
      testid: 'webhook-toggle',
      'aria-label': t('hooks.toggle'),
      onchange: async () => {
        const want = toggle.checked;
        toggle.disabled = true;
        try {
          const updated = await api.patch(`/webhooks/${seg(w.id)}`, { is_enabled: want });
          w.is_enabled = !!updated.is_enabled;
          toggle.checked = w.is_enabled;
          toast(t(w.is_enabled ? 'hooks.enabled' : 'hooks.disabled', { name: w.name }));
        } catch (err) {
          toggle.checked = !want;
          toastError(err);
        } finally {
          toggle.disabled = false;
        }
      },
    });
    const testBtn = h('button', { class: 'btn btn-ghost btn-sm', testid: 'webhook-test', title: t('hooks.test'), onclick: () => sendTest(w, testBtn) }, icon('zap', 'h-4 w-4'), h('span', { class: 'hidden md:inline' }, t('hooks.test')));
    return h(
      'tr',
      { class: 'hover:bg-base-200/50', testid: 'webhook-row', dataset: { id: String(w.id), name: String(w.name ?? '') } },
      h('td', { class: 'max-w-64' }, h('div', { class: 'font-medium truncate', title: w.name, testid: 'webhook-name' }, w.name), h('div', { class: 'text-xs font-mono text-base-content/60 truncate', title: w.url, testid: 'webhook-url' }, w.url)),
      h('td', { class: 'max-w-72' }, h('div', { class: 'flex flex-wrap gap-1' }, (w.events || []).map((e) => h('span', { class: 'badge badge-sm badge-outline', title: t(`hooks.event.${e}`) }, e)))),
      h('td', null, toggle),
      h('td', { class: 'text-sm whitespace-nowrap' }, fmtDateTime(w.created_at)),
      h(
        'td',
        { class: 'text-right whitespace-nowrap' },
        testBtn,
        h('button', { class: 'btn btn-ghost btn-sm', testid: 'webhook-deliveries', title: t('hooks.deliveries'), onclick: () => showDeliveries(w) }, icon('logs', 'h-4 w-4'), h('span', { class: 'hidden md:inline' }, t('hooks.deliveries'))),
        h('button', { class: 'btn btn-ghost btn-sm btn-square', title: t('common.edit'), 'aria-label': t('common.edit'), testid: 'webhook-edit', onclick: () => openForm(w) }, icon('edit', 'h-4 w-4')),
        h('button', { class: 'btn btn-ghost btn-sm btn-square text-error', title: t('common.delete'), 'aria-label': t('common.delete'), testid: 'webhook-delete', onclick: () => remove(w) }, icon('trash', 'h-4 w-4')),
      ),
    );
  }

  async function sendTest(w, btn) {
    const done = busy(btn);
    try {
      await api.post(`/webhooks/${seg(w.id)}/test`);
      toast(t('hooks.testSent', { name: w.name }));
      showDeliveries(w);
    } catch (err) {
      toastError(err);
    } finally {
      done();
    }
  }

  async function remove(w) {
    const ok = await confirmDialog({ title: t('hooks.deleteTitle'), message: t('hooks.deleteText', { name: w.name }), confirmText: t('common.delete') });
    if (!ok) return;
    try {
      await api.del(`/webhooks/${seg(w.id)}`);
      toast(t('hooks.deleted', { name: w.name }));
      load();
    } catch (err) {
      toastError(err);
      if (err.status === 404) load();
    }
  }

  // ---- deliveries ------------------------------------------------------------
  function hideDeliveries() {
    shown.hook = null;
    clearTimeout(shown.timer);
    setChildren(deliveries);
  }

  function showDeliveries(w) {
    if (!shown.hook || shown.hook.id !== w.id) shown.page = 1;
    shown.hook = w;
    loadDeliveries();
  }

  async function loadDeliveries() {
    clearTimeout(shown.timer);
    const w = shown.hook;
    if (!w || disposed) return;
    const body = h('tbody', { testid: 'deliveries-tbody' }, fullRow(6, loadingBlock()));
    const footer = h('div');
    setChildren(
      deliveries,
      h(
        'section',
        { class: 'card bg-base-100 shadow-sm border border-base-300 mt-6', testid: 'deliveries-card' },
        h(
          'div',
          { class: 'flex flex-wrap items-center justify-between gap-2 p-4 border-b border-base-300' },
          h('h2', { class: 'font-semibold' }, t('hooks.deliveriesOf', { name: w.name })),
          h('div', { class: 'flex gap-2' }, h('button', { class: 'btn btn-ghost btn-sm', testid: 'deliveries-refresh', onclick: loadDeliveries }, icon('refresh', 'h-4 w-4'), t('hooks.refresh')), h('button', { class: 'btn btn-ghost btn-sm btn-square', 'aria-label': t('common.close'), onclick: hideDeliveries }, icon('x', 'h-4 w-4'))),
        ),
        h(
          'div',
          { class: 'overflow-x-auto' },
          h('table', { class: 'table table-sm' }, h('thead', null, h('tr', null, [t('hooks.d.event'), t('hooks.d.status'), t('hooks.d.attempts'), t('hooks.d.last'), t('hooks.d.created'), t('hooks.d.next')].map((c) => h('th', null, c)))), body),
        ),
        footer,
      ),
    );
    try {
      const res = await api.get(`/webhooks/${seg(w.id)}/deliveries`, { page: shown.page, page_size: shown.pageSize });
      if (disposed || shown.hook !== w) return;
      const rows = res.data || [];
      setChildren(body, rows.length ? rows.map(deliveryRow) : fullRow(6, emptyBlock(t('hooks.noDeliveries'), null, 'inbox')));
      setChildren(footer, res.total ? pager({ page: shown.page, pageSize: shown.pageSize, total: res.total, onChange: (p, s) => { shown.page = p; shown.pageSize = s; loadDeliveries(); } }) : null);
      // Pending deliveries change on their own: look again shortly.
      if (rows.some((r) => r.status === 'pending')) shown.timer = setTimeout(loadDeliveries, 2000);
    } catch (err) {
      if (disposed || err.status === 401) return;
      setChildren(body, fullRow(6, errorBlock(err, loadDeliveries)));
    }
  }

  function deliveryRow(d) {
    const last = d.last_status_code ? `HTTP ${d.last_status_code}` : '';
    return h(
      'tr',
      { testid: 'delivery-row', dataset: { status: d.status, event: d.event } },
      h('td', null, h('div', { class: 'font-mono text-xs' }, d.event), h('div', { class: 'text-xs text-base-content/50 font-mono' }, d.event_id)),
      h('td', null, h('span', { class: `badge badge-sm ${STATUS_BADGE[d.status] || 'badge-ghost'}`, testid: 'delivery-status' }, t(`hooks.status.${d.status}`))),
      h('td', { class: 'text-sm' }, String(d.attempts)),
      h('td', { class: 'text-xs max-w-64' }, h('div', null, last || '—'), d.last_error ? h('div', { class: 'text-error break-words' }, d.last_error) : null),
      h('td', { class: 'text-xs whitespace-nowrap' }, fmtDateTime(d.created_at, true)),
      h('td', { class: 'text-xs whitespace-nowrap' }, d.delivered_at ? t('hooks.deliveredAt', { when: fmtRelative(d.delivered_at) }) : d.next_attempt_at ? fmtRelative(d.next_attempt_at) : '—'),
    );
  }

  // ---- create / edit -----------------------------------------------------------
  function openForm(w) {
    const editing = !!w;
    const name = h('input', { class: 'input w-full', testid: 'webhook-form-name', maxlength: '100', value: w ? w.name : '', placeholder: t('hooks.form.namePlaceholder') });
    const url = h('input', { class: 'input w-full font-mono', testid: 'webhook-form-url', type: 'url', maxlength: '2048', value: w ? w.url : '', placeholder: 'https://example.com/hooks/gpt2api' });
    const secret = h('input', { class: 'input w-full font-mono', testid: 'webhook-form-secret', autocomplete: 'off', placeholder: editing ? t('hooks.form.secretKeep') : t('hooks.form.secretGenerated') });
    const chosen = new Set(w ? w.events : EVENTS);
    const boxes = EVENTS.map((e) =>
      h(
        'label',
        { class: 'flex items-start gap-2 cursor-pointer py-1' },
        h('input', { type: 'checkbox', class: 'checkbox checkbox-sm mt-0.5', checked: chosen.has(e), testid: `webhook-event-${e}`, onchange: (ev) => (ev.target.checked ? chosen.add(e) : chosen.delete(e)) }),
        h('span', null, h('span', { class: 'font-mono text-sm' }, e), h('span', { class: 'block text-xs text-base-content/60' }, t(`hooks.event.${e}`))),
      ),
    );
    const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'webhook-form-error' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'webhook-form-submit' }, editing ? t('common.save') : t('hooks.create'));
    const showError = (msg) => {
      errorBox.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, msg));
      errorBox.classList.remove('hidden');
    };
    const form = h(
      'form',
      {
        testid: 'webhook-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          errorBox.classList.add('hidden');
          const body = { name: name.value.trim(), events: EVENTS.filter((x) => chosen.has(x)) };
          if (!body.name) return showError(t('hooks.form.nameRequired'));
          if (!body.events.length) return showError(t('hooks.form.eventsRequired'));
          // An unchanged (masked) URL is not sent back.
          if (!editing || url.value.trim() !== w.url) body.url = url.value.trim();
          if (secret.value) body.secret = secret.value;
          const done = busy(submit);
          try {
            if (editing) {
              await api.patch(`/webhooks/${seg(w.id)}`, body);
              toast(t('hooks.saved', { name: body.name }));
              m.close();
            } else {
              const created = await api.post('/webhooks', body);
              m.close();
              showSecret(created);
            }
            load();
          } catch (err) {
            done();
            if (err.status !== 401) showError(err.message);
          }
        },
      },
      errorBox,
      field(t('hooks.form.name'), name),
      field(t('hooks.form.url'), url, t('hooks.form.urlHint')),
      h('fieldset', { class: 'fieldset' }, h('legend', { class: 'fieldset-legend' }, t('hooks.form.events')), boxes),
      field(t('hooks.form.secret'), secret, t('hooks.form.secretHint')),
      h('div', { class: 'modal-action' }, h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => m.close() }, t('common.cancel')), submit),
    );
    const m = openModal({ title: editing ? t('hooks.editTitle', { name: w.name }) : t('hooks.createTitle'), content: form, testid: 'webhook-dialog' });
    setTimeout(() => name.focus(), 0);
  }

  /** Shows a new webhook's signing secret: the only time it is shown. */
  function showSecret(created) {
    const value = created && created.secret ? String(created.secret) : '';
    const copyBtn = h(
      'button',
      {
        type: 'button',
        class: 'btn btn-primary btn-sm',
        testid: 'new-secret-copy',
        onclick: async () => {
          const ok = await copyText(value);
          toast(ok ? t('hooks.copied') : t('hooks.copyFailed'), ok ? 'success' : 'warning');
        },
      },
      icon('copy', 'h-4 w-4'),
      t('hooks.copy'),
    );
    const content = h(
      'div',
      { class: 'flex flex-col gap-4' },
      h('div', { role: 'alert', class: 'alert alert-warning text-sm' }, icon('alert'), h('span', null, t('hooks.secretOnce'))),
      h('div', { class: 'flex items-center gap-2 rounded-box bg-base-200 p-3' }, h('code', { class: 'block flex-1 min-w-0 break-all font-mono text-sm select-all', testid: 'new-secret-value' }, value), copyBtn),
      h('p', { class: 'text-sm text-base-content/70' }, t('hooks.verifyHint')),
      h('div', { class: 'modal-action mt-0' }, h('button', { type: 'button', class: 'btn', testid: 'new-secret-done', onclick: () => m.close() }, t('hooks.savedIt'))),
    );
    const m = openModal({ title: t('hooks.secretTitle'), content, testid: 'new-secret-dialog' });
  }

  load();
  return () => {
    disposed = true;
    clearTimeout(shown.timer);
  };
}
