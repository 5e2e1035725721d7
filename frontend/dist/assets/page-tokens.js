// Token accounts (Codex credentials): import many files at once, see each
// account's status, expiry and rate-limit windows, refresh / enable /
// rename / delete, and export a backup.

import { api, seg } from './api.js';
import { t, fmtNum, fmtDateTime, fmtRelative, fmtDuration } from './i18n.js';
import {
  h, icon, setChildren, pageHeader, pager, fullRow, loadingBlock, emptyBlock, errorBlock, toast, toastError,
  openModal, confirmDialog, debounce, busy, field, spinner,
} from './ui.js';
import { replaceParams } from './router.js';
import { TOKEN_STATUSES, statusBadge, statusLabel, tokenTitle } from './status.js';
import { openSignIn } from './sign-in.js';

const COLS = 6;

/** Human label of a rate-limit window from its length in minutes. */
function windowLabel(minutes, fallbackKey) {
  if (minutes === 300) return t('tokens.window5h');
  if (minutes === 10080) return t('tokens.windowWeek');
  if (minutes) return fmtDuration(minutes * 60);
  return t(fallbackKey);
}

function usageBar(testid, label, percent, resetsAt) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  const tone = p >= 90 ? 'progress-error' : p >= 70 ? 'progress-warning' : 'progress-success';
  return h(
    'div',
    { class: 'w-32', testid, dataset: { percent: String(p) }, title: resetsAt ? t('tokens.resets', { rel: fmtRelative(resetsAt), when: fmtDateTime(resetsAt) }) : '' },
    h('div', { class: 'flex justify-between text-xs' }, h('span', { class: 'text-base-content/60' }, label), h('span', { class: 'tabular-nums font-medium' }, `${Math.round(p)}%`)),
    h('progress', { class: `progress h-1.5 ${tone}`, value: String(p), max: '100' }),
    resetsAt ? h('div', { class: 'text-[11px] text-base-content/50 whitespace-nowrap' }, t('tokens.resetsShort', { rel: fmtRelative(resetsAt) })) : null,
  );
}

const COOLDOWN_REASONS = ['usage_limit', 'transient', 'forbidden', 'refresh', 'breaker'];

/** The circuit breaker's badge when it is not closed (open: no requests; half-open: one trial). */
function breakerBadge(breaker) {
  if (breaker !== 'open' && breaker !== 'half_open') return null;
  const tone = breaker === 'open' ? 'badge-warning' : 'badge-info badge-outline';
  return h('span', { class: `badge badge-sm whitespace-nowrap mt-1 ${tone}`, testid: 'token-breaker', dataset: { breaker }, title: t(`tokens.breaker.${breaker}.hint`) }, t(`tokens.breaker.${breaker}`));
}

/** Expiry text for a countdown cell; refreshed every second. */
function expiryText(iso) {
  if (!iso) return { text: t('tokens.noExpiry'), cls: 'text-base-content/50' };
  const diff = (new Date(iso).getTime() - Date.now()) / 1000;
  if (!Number.isFinite(diff)) return { text: '—', cls: '' };
  if (diff <= 0) return { text: t('tokens.expiredAgo', { d: fmtDuration(-diff) }), cls: 'text-error' };
  // Under an hour the countdown shows seconds, so it visibly ticks.
  return { text: t('tokens.expiresIn', { d: fmtDuration(diff, diff < 3600) }), cls: diff < 3600 ? 'text-warning' : '' };
}

export function mount(el, { params }) {
  const state = {
    q: params.get('q') || '',
    status: TOKEN_STATUSES.includes(params.get('status')) ? params.get('status') : '',
    page: Math.max(1, Number(params.get('page')) || 1),
    pageSize: [10, 20, 50, 100].includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 20,
  };
  let disposed = false;
  let seq = 0;

  // ---- import -------------------------------------------------------------
  const fileInput = h('input', { type: 'file', multiple: true, accept: '.json,application/json', class: 'sr-only', testid: 'tokens-file-input', onchange: () => upload(Array.from(fileInput.files || [])) });
  const dropzone = h(
    'label',
    {
      class: 'flex cursor-pointer flex-col items-center justify-center gap-2 rounded-box border-2 border-dashed border-base-300 px-4 py-8 text-center transition-colors hover:border-primary hover:bg-base-200/60 focus-within:border-primary',
      testid: 'tokens-dropzone',
    },
    fileInput,
    h('span', { class: 'grid h-12 w-12 place-items-center rounded-full bg-primary/10 text-primary' }, icon('upload', 'h-6 w-6')),
    h('span', { class: 'font-medium' }, t('tokens.dropTitle')),
    h('span', { class: 'text-sm text-base-content/60 max-w-md' }, t('tokens.dropHint')),
  );
  for (const ev of ['dragenter', 'dragover']) {
    dropzone.addEventListener(ev, (e) => {
      e.preventDefault();
      dropzone.classList.add('dropzone-active');
    });
  }
  for (const ev of ['dragleave', 'dragend']) dropzone.addEventListener(ev, () => dropzone.classList.remove('dropzone-active'));
  dropzone.addEventListener('drop', (e) => {
    e.preventDefault();
    dropzone.classList.remove('dropzone-active');
    const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
    if (files.length) upload(files);
  });
  const result = h('div', { class: 'hidden', testid: 'import-result' });

  async function upload(files) {
    if (!files.length) return;
    result.classList.remove('hidden');
    setChildren(result, h('div', { class: 'flex items-center gap-3 text-sm' }, spinner('loading-sm'), t('tokens.importing', { n: files.length, count: files.length })));
    const form = new FormData();
    for (const f of files) form.append('file', f, f.name);
    try {
      const res = await api.upload('/tokens/import', form);
      if (disposed) return;
      showResult(files, res || {});
      const failed = failedCount(res || {});
      toast(t('tokens.importDone', { imported: res.imported || 0, updated: res.updated || 0, failed }), failed ? 'warning' : 'success');
      load();
    } catch (err) {
      if (disposed) return;
      setChildren(result, h('div', { role: 'alert', class: 'alert alert-error alert-soft text-sm', testid: 'import-error' }, icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, err.message)));
      toastError(err);
    } finally {
      fileInput.value = '';
    }
  }

  // The server lists the first failures only; `failed_count` is their total.
  function failedCount(res) {
    const listed = Array.isArray(res.failed) ? res.failed.length : 0;
    return Number.isFinite(res.failed_count) ? res.failed_count : listed;
  }

  function showResult(files, res) {
    const failed = Array.isArray(res.failed) ? res.failed : [];
    const total = failedCount(res);
    const used = new Set();
    const matchFor = (name) =>
      failed.filter((f, i) => {
        const src = String(f.source ?? '');
        const hit = src === name || src.startsWith(`${name}[`) || src.startsWith(`${name}#`) || src.startsWith(`${name}:`) || src.startsWith(`${name} `) || src.startsWith(`${name}/`);
        if (hit) used.add(i);
        return hit;
      });
    const items = files.map((f) => {
      const fails = matchFor(f.name);
      const ok = fails.length === 0;
      return h(
        'li',
        { class: 'flex items-start gap-2 py-2', testid: 'import-result-item', dataset: { status: ok ? 'ok' : 'failed', source: f.name } },
        h('span', { class: ok ? 'text-success' : 'text-error' }, icon(ok ? 'checkCircle' : 'xCircle', 'h-5 w-5')),
        h(
          'div',
          { class: 'min-w-0 flex-1' },
          h('div', { class: 'font-medium break-all', testid: 'import-result-source' }, f.name),
          ok
            ? h('div', { class: 'text-sm text-base-content/60' }, t('tokens.fileOk'))
            : fails.map((x) => h('div', { class: 'text-sm text-error break-words', testid: 'import-result-reason' }, x.source !== f.name ? `${x.source}: ${x.reason}` : x.reason)),
        ),
      );
    });
    // Failures the server named differently from any uploaded file.
    failed.forEach((x, i) => {
      if (used.has(i)) return;
      items.push(
        h(
          'li',
          { class: 'flex items-start gap-2 py-2', testid: 'import-result-item', dataset: { status: 'failed', source: String(x.source ?? '') } },
          h('span', { class: 'text-error' }, icon('xCircle', 'h-5 w-5')),
          h('div', { class: 'min-w-0 flex-1' }, h('div', { class: 'font-medium break-all', testid: 'import-result-source' }, String(x.source ?? '—')), h('div', { class: 'text-sm text-error break-words', testid: 'import-result-reason' }, String(x.reason ?? ''))),
        ),
      );
    });
    if (total > failed.length) {
      items.push(
        h(
          'li',
          { class: 'flex items-start gap-2 py-2 text-sm text-base-content/70', testid: 'import-result-more' },
          h('span', { class: 'text-error' }, icon('xCircle', 'h-5 w-5')),
          h('div', { class: 'min-w-0 flex-1' }, t('tokens.moreFailed', { n: total - failed.length })),
        ),
      );
    }
    const anyFailed = total > 0;
    setChildren(
      result,
      h(
        'div',
        { class: 'flex flex-wrap items-center justify-between gap-2' },
        h(
          'div',
          { class: 'flex flex-wrap items-center gap-2 text-sm', testid: 'import-summary', dataset: { imported: String(res.imported || 0), updated: String(res.updated || 0), failed: String(total) } },
          h('span', { class: 'badge badge-success' }, t('tokens.imported', { n: res.imported || 0 })),
          h('span', { class: 'badge badge-info' }, t('tokens.updated', { n: res.updated || 0 })),
          h('span', { class: `badge ${anyFailed ? 'badge-error' : 'badge-ghost'}` }, t('tokens.failed', { n: total })),
        ),
        h('button', { type: 'button', class: 'btn btn-ghost btn-xs', testid: 'import-result-close', onclick: () => result.classList.add('hidden') }, icon('x', 'h-3.5 w-3.5'), t('common.close')),
      ),
      h('ul', { class: 'mt-2 divide-y divide-base-300', testid: 'import-result-list' }, items),
    );
  }

  // ---- table --------------------------------------------------------------
  const search = h('input', {
    type: 'search',
    class: 'grow',
    placeholder: t('tokens.search'),
    value: state.q,
    testid: 'tokens-search',
    'aria-label': t('tokens.search'),
    oninput: debounce(() => {
      state.q = search.value.trim();
      state.page = 1;
      load();
    }, 300),
  });
  const statusSel = h(
    'select',
    {
      class: 'select w-full sm:w-48',
      testid: 'tokens-status-filter',
      'aria-label': t('tokens.statusFilter'),
      onchange: () => {
        state.status = statusSel.value;
        state.page = 1;
        load();
      },
    },
    h('option', { value: '' }, t('tokens.allStatuses')),
    TOKEN_STATUSES.map((s) => h('option', { value: s, selected: s === state.status }, statusLabel(s))),
  );
  const tbody = h('tbody', { testid: 'tokens-tbody' });
  const footer = h('div');
  const exportBtn = h('button', { class: 'btn', testid: 'tokens-export', onclick: () => exportAll() }, icon('download'), t('tokens.export'));
  const signInBtn = h('button', { class: 'btn btn-primary', testid: 'tokens-signin', onclick: () => openSignIn({ onAdded: () => load() }) }, icon('users', 'h-4 w-4'), t('signin.button'));

  setChildren(
    el,
    pageHeader(t('nav.tokens'), t('tokens.subtitle'), signInBtn, exportBtn),
    h(
      'section',
      { class: 'card bg-base-100 shadow-sm border border-base-300 mb-6', testid: 'import-card' },
      h('div', { class: 'card-body gap-3 p-4 sm:p-6' }, h('h2', { class: 'card-title text-base' }, t('tokens.importTitle')), dropzone, result),
    ),
    h(
      'div',
      { class: 'card bg-base-100 shadow-sm border border-base-300' },
      h(
        'div',
        { class: 'flex flex-wrap items-center gap-3 p-4 border-b border-base-300' },
        h('label', { class: 'input w-full sm:w-72' }, icon('search', 'h-4 w-4 opacity-50'), search),
        statusSel,
        h('button', { class: 'btn btn-ghost btn-square ml-auto', title: t('common.refresh'), 'aria-label': t('common.refresh'), testid: 'tokens-reload', onclick: () => load() }, icon('refresh', 'h-4 w-4')),
      ),
      h(
        'div',
        { class: 'overflow-x-auto' },
        h(
          'table',
          { class: 'table table-sm', testid: 'tokens-table' },
          h('thead', null, h('tr', null, [t('tokens.col.account'), t('tokens.col.status'), t('tokens.col.expiry'), t('tokens.col.limits'), t('tokens.col.activity'), ''].map((c, i) => h('th', { class: i === COLS - 1 ? 'text-right' : '' }, c)))),
          tbody,
        ),
      ),
      footer,
    ),
  );

  function syncUrl() {
    replaceParams('tokens', { q: state.q || undefined, status: state.status || undefined, page: state.page > 1 ? state.page : undefined, page_size: state.pageSize !== 20 ? state.pageSize : undefined });
  }

  async function load() {
    const my = ++seq;
    syncUrl();
    setChildren(tbody, fullRow(COLS, loadingBlock()));
    try {
      const res = await api.get('/tokens', { page: state.page, page_size: state.pageSize, q: state.q, status: state.status });
      if (disposed || my !== seq) return;
      const rows = res.data || [];
      if (!rows.length && res.total > 0 && state.page > 1) {
        state.page = Math.max(1, Math.ceil(res.total / state.pageSize));
        return load();
      }
      if (!rows.length) {
        const filtered = state.q || state.status;
        setChildren(tbody, fullRow(COLS, filtered ? emptyBlock(t('tokens.noMatch'), null, 'search') : emptyBlock(t('tokens.empty'), t('tokens.emptyHint'), 'users')));
      } else {
        setChildren(tbody, rows.map(row));
      }
      setChildren(footer, res.total ? pager({ page: state.page, pageSize: state.pageSize, total: res.total, onChange: (p, s) => { state.page = p; state.pageSize = s; load(); } }) : null);
      tickExpiry();
    } catch (err) {
      if (disposed || my !== seq || err.status === 401) return;
      setChildren(tbody, fullRow(COLS, errorBlock(err, load)));
      setChildren(footer);
    }
  }

  function row(tok) {
    const rl = tok.rate_limits;
    const title = tokenTitle(tok);
    const toggle = h('input', {
      type: 'checkbox',
      class: 'toggle toggle-sm toggle-success',
      checked: !!tok.is_active,
      testid: 'token-toggle',
      title: t(tok.is_active ? 'tokens.disable' : 'tokens.enable'),
      'aria-label': t('tokens.toggle'),
      onchange: async () => {
        const want = toggle.checked;
        toggle.disabled = true;
        try {
          const updated = await api.patch(`/tokens/${seg(tok.id)}`, { is_active: want });
          toast(t(want ? 'tokens.enabled' : 'tokens.disabled', { name: title }));
          replaceRow(tr, updated && updated.id !== undefined ? updated : { ...tok, is_active: want });
        } catch (err) {
          toggle.checked = !want;
          toggle.disabled = false;
          toastError(err);
        }
      },
    });
    const refreshBtn = h('button', { class: 'btn btn-ghost btn-sm btn-square', title: t('tokens.refresh'), 'aria-label': t('tokens.refresh'), testid: 'token-refresh', onclick: () => refresh(tok, refreshBtn, tr) }, icon('refresh', 'h-4 w-4'));
    const exp = expiryText(tok.expired_at);

    const tr = h(
      'tr',
      { class: 'hover:bg-base-200/50 align-top', testid: 'token-row', dataset: { id: String(tok.id), name: String(tok.name ?? ''), email: String(tok.email ?? ''), status: String(tok.status ?? '') } },
      h(
        'td',
        { class: 'min-w-44 max-w-56' },
        // The plan rides beside the name, so the table fits a 1280 px screen.
        h(
          'div',
          { class: 'flex items-start justify-between gap-2' },
          h('div', { class: 'min-w-0 font-medium break-words', testid: 'token-name' }, title),
          tok.plan_type ? h('span', { class: 'badge badge-sm badge-outline capitalize shrink-0', title: t('tokens.col.plan'), testid: 'token-plan' }, tok.plan_type) : null,
        ),
        tok.email && tok.email !== title ? h('div', { class: 'text-xs text-base-content/60 break-words', testid: 'token-email' }, tok.email) : null,
        tok.account_id ? h('div', { class: 'text-[11px] font-mono text-base-content/40 truncate', title: tok.account_id }, tok.account_id) : null,
      ),
      h(
        'td',
        { class: 'min-w-28 max-w-56' },
        statusBadge(tok.status),
        tok.status === 'cooling_down' && tok.cooldown_until
          ? h(
              'div',
              { class: 'text-[11px] text-base-content/60 mt-1 whitespace-nowrap', testid: 'token-cooldown' },
              t('tokens.until', { rel: fmtRelative(tok.cooldown_until) }),
              COOLDOWN_REASONS.includes(tok.cooldown_reason) ? ` · ${t(`tokens.cooldown.${tok.cooldown_reason}`)}` : '',
            )
          : null,
        breakerBadge(tok.breaker),
        tok.last_error
          ? h('button', { type: 'button', class: 'mt-1 text-left text-xs text-error line-clamp-2 break-words hover:underline cursor-pointer', testid: 'token-last-error', title: t('tokens.showError'), onclick: () => showError(tok) }, tok.last_error)
          : null,
      ),
      h(
        'td',
        { class: 'whitespace-nowrap text-sm' },
        h('div', { class: `tabular-nums ${exp.cls}`, testid: 'token-expiry', dataset: { expires: tok.expired_at || '' }, title: fmtDateTime(tok.expired_at) }, exp.text),
        tok.last_refresh_at ? h('div', { class: 'text-[11px] text-base-content/50' }, t('tokens.refreshedAgo', { rel: fmtRelative(tok.last_refresh_at) })) : null,
      ),
      h(
        'td',
        null,
        rl
          ? h(
              'div',
              { class: 'flex flex-col gap-2' },
              usageBar('token-usage-primary', windowLabel(rl.primary_window_minutes, 'tokens.window5h'), rl.primary_used_percent, rl.primary_resets_at),
              usageBar('token-usage-secondary', windowLabel(rl.secondary_window_minutes, 'tokens.windowWeek'), rl.secondary_used_percent, rl.secondary_resets_at),
              tok.usage_checked_at ? h('div', { class: 'text-[11px] text-base-content/50 whitespace-nowrap', testid: 'token-usage-checked', title: fmtDateTime(tok.usage_checked_at) }, t('tokens.usageChecked', { rel: fmtRelative(tok.usage_checked_at) })) : null,
            )
          : h('span', { class: 'text-xs text-base-content/50' }, t('tokens.noLimits')),
      ),
      h(
        'td',
        { class: 'text-sm whitespace-nowrap' },
        h('div', null, t('tokens.requests', { n: fmtNum(tok.usage_count || 0), count: tok.usage_count || 0 })),
        tok.pinned_conversations ? h('div', { class: 'text-xs text-base-content/70', testid: 'token-pinned', title: t('tokens.pinnedHint') }, t('tokens.pinned', { n: fmtNum(tok.pinned_conversations), count: tok.pinned_conversations })) : null,
        tok.error_count ? h('div', { class: 'text-xs text-error' }, t('tokens.errors', { n: fmtNum(tok.error_count), count: tok.error_count })) : null,
        h('div', { class: 'text-xs text-base-content/50' }, tok.last_used_at ? t('tokens.usedAgo', { rel: fmtRelative(tok.last_used_at) }) : t('tokens.neverUsed')),
      ),
      h(
        'td',
        { class: 'text-right whitespace-nowrap' },
        h(
          'div',
          { class: 'flex items-center justify-end gap-1' },
          toggle,
          refreshBtn,
          h('button', { class: 'btn btn-ghost btn-sm btn-square', title: t('tokens.rename'), 'aria-label': t('tokens.rename'), testid: 'token-rename', onclick: () => rename(tok, tr) }, icon('edit', 'h-4 w-4')),
          h('button', { class: 'btn btn-ghost btn-sm btn-square text-error', title: t('common.delete'), 'aria-label': t('common.delete'), testid: 'token-delete', onclick: () => remove(tok) }, icon('trash', 'h-4 w-4')),
        ),
      ),
    );
    return tr;
  }

  function replaceRow(tr, tok) {
    if (tr.isConnected) tr.replaceWith(row(tok));
    tickExpiry();
  }

  async function refresh(tok, btn, tr) {
    const done = busy(btn);
    try {
      const updated = await api.post(`/tokens/${seg(tok.id)}/refresh`);
      toast(t('tokens.refreshed', { name: tokenTitle(tok), rel: updated && updated.expired_at ? fmtRelative(updated.expired_at) : '—' }));
      replaceRow(tr, updated && updated.id !== undefined ? updated : tok);
    } catch (err) {
      done();
      if (err.status !== 401) toast(t('tokens.refreshFailed', { name: tokenTitle(tok), reason: err.message }), 'error');
      if (err.status === 502) load();
    }
  }

  function showError(tok) {
    openModal({
      title: t('tokens.errorTitle', { name: tokenTitle(tok) }),
      testid: 'token-error-dialog',
      content: h(
        'div',
        { class: 'flex flex-col gap-3' },
        h('div', { class: 'flex items-center gap-2' }, statusBadge(tok.status), h('span', { class: 'text-sm text-base-content/60' }, t('tokens.errors', { n: fmtNum(tok.error_count || 0), count: tok.error_count || 0 }))),
        h('pre', { class: 'whitespace-pre-wrap break-all rounded-box bg-base-200 p-3 text-sm max-h-96 overflow-auto' }, tok.last_error || ''),
      ),
    });
  }

  function rename(tok, tr) {
    const input = h('input', { class: 'input w-full', value: tok.name || '', maxlength: '100', testid: 'token-rename-input', placeholder: tok.email || '' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'token-rename-submit' }, t('common.save'));
    const form = h(
      'form',
      {
        onsubmit: async (e) => {
          e.preventDefault();
          const done = busy(submit);
          try {
            const updated = await api.patch(`/tokens/${seg(tok.id)}`, { name: input.value.trim() });
            toast(t('tokens.renamed'));
            m.close();
            replaceRow(tr, updated && updated.id !== undefined ? updated : { ...tok, name: input.value.trim() });
          } catch (err) {
            done();
            toastError(err);
          }
        },
      },
      field(t('tokens.name'), input, t('tokens.nameHint')),
      h('div', { class: 'modal-action' }, h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => m.close() }, t('common.cancel')), submit),
    );
    const m = openModal({ title: t('tokens.renameTitle'), content: form, testid: 'rename-dialog' });
    setTimeout(() => input.select(), 0);
  }

  async function remove(tok) {
    const ok = await confirmDialog({ title: t('tokens.deleteTitle'), message: t('tokens.deleteText', { name: tokenTitle(tok) }), confirmText: t('common.delete') });
    if (!ok) return;
    try {
      await api.del(`/tokens/${seg(tok.id)}`);
      toast(t('tokens.deleted', { name: tokenTitle(tok) }));
      load();
    } catch (err) {
      toastError(err);
      if (err.status === 404) load();
    }
  }

  async function exportAll() {
    const ok = await confirmDialog({ title: t('tokens.exportTitle'), message: t('tokens.exportText'), confirmText: t('tokens.exportConfirm'), danger: false });
    if (!ok) return;
    const done = busy(exportBtn);
    try {
      const data = await api.get('/tokens/export');
      const blob = new Blob([JSON.stringify(data ?? [], null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const day = new Date().toISOString().slice(0, 10);
      const a = h('a', { href: url, download: `gpt2api-accounts-${day}.json`, class: 'hidden' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(t('tokens.exported', { n: Array.isArray(data) ? data.length : 0, count: Array.isArray(data) ? data.length : 0 }));
    } catch (err) {
      toastError(err);
    } finally {
      done();
    }
  }

  // Expiry countdowns tick every second without re-rendering rows.
  function tickExpiry() {
    for (const cell of tbody.querySelectorAll('[data-testid="token-expiry"]')) {
      const e = expiryText(cell.dataset.expires);
      cell.textContent = e.text;
      cell.className = `tabular-nums ${e.cls}`;
    }
  }
  const ticker = setInterval(tickExpiry, 1000);

  load();
  if (params.get('import') === '1') {
    setTimeout(() => {
      dropzone.scrollIntoView({ block: 'center', behavior: 'smooth' });
      dropzone.classList.add('dropzone-active');
      fileInput.focus();
      setTimeout(() => dropzone.classList.remove('dropzone-active'), 1500);
    }, 50);
  }
  if (params.get('signin') === '1') openSignIn({ onAdded: () => load() });

  return () => {
    disposed = true;
    clearInterval(ticker);
  };
}
