// Token accounts (Codex credentials): import many files at once, see each
// account's status, expiry and rate-limit windows, refresh / enable /
// rename / delete, and export a backup. For pools of hundreds: sorting (also by
// clicking a column), a "near limit" filter, pages of up to 200, row selection
// with a bulk bar (enable, disable, refresh, test, delete, export) that shows
// each account's result, and a detail drawer per account.

import { api, seg } from './api.js';
import { t, fmtNum, fmtDateTime, fmtRelative, fmtDuration } from './i18n.js';
import {
  h, icon, setChildren, pageHeader, pager, fullRow, loadingBlock, emptyBlock, errorBlock, toast, toastError,
  openModal, confirmDialog, debounce, busy, field, spinner,
} from './ui.js';
import { replaceParams, hashFor } from './router.js';
import { reasonText, logError } from './reasons.js';
import { TOKEN_STATUSES, statusBadge, statusLabel, tokenTitle } from './status.js';
import { openSignIn } from './sign-in.js';

const COLS = 7;
const SIZES = [20, 50, 100, 200];
const SORTS = ['primary_used_percent', 'secondary_used_percent', 'resets_at', 'expired_at', 'error_count', 'last_used_at', 'usage_count'];
const NEAR_LIMIT = 'near_limit';
const BULK_ACTIONS = ['enable', 'disable', 'refresh', 'probe', 'delete'];

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
    status: TOKEN_STATUSES.includes(params.get('status')) || params.get('status') === NEAR_LIMIT ? params.get('status') : '',
    sort: SORTS.includes(params.get('sort')) ? params.get('sort') : '',
    order: params.get('order') === 'desc' ? 'desc' : 'asc',
    page: Math.max(1, Number(params.get('page')) || 1),
    pageSize: SIZES.includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 20,
  };
  // Selected account ids (kept across pages and reloads until cleared).
  const selected = new Set();
  let shown = [];
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
    h('option', { value: NEAR_LIMIT, selected: state.status === NEAR_LIMIT }, t('tokens.nearLimit')),
  );
  const sortSel = h(
    'select',
    {
      class: 'select w-full sm:w-44',
      testid: 'tokens-sort',
      'aria-label': t('tokens.sortBy'),
      onchange: () => {
        state.sort = sortSel.value;
        state.page = 1;
        load();
      },
    },
    h('option', { value: '' }, t('tokens.sort.default')),
    SORTS.map((k) => h('option', { value: k, selected: k === state.sort }, t(`tokens.sort.${k}`))),
  );
  const orderBtn = h('button', {
    type: 'button',
    class: 'btn btn-square',
    testid: 'tokens-order',
    onclick: () => {
      state.order = state.order === 'desc' ? 'asc' : 'desc';
      state.page = 1;
      load();
    },
  });
  function showOrder() {
    orderBtn.textContent = state.order === 'desc' ? '↓' : '↑';
    orderBtn.title = t(`tokens.order.${state.order}`);
    orderBtn.setAttribute('aria-label', t(`tokens.order.${state.order}`));
    orderBtn.dataset.order = state.order;
    sortSel.value = state.sort;
  }
  // Clicking a column sorts by it; clicking it again turns the order.
  function sortBy(key) {
    if (state.sort === key) state.order = state.order === 'desc' ? 'asc' : 'desc';
    else {
      state.sort = key;
      state.order = 'desc';
    }
    state.page = 1;
    load();
  }
  const sortHeader = (label, key) =>
    h('button', { type: 'button', class: 'inline-flex items-center gap-1 hover:underline', testid: `tokens-sort-${key}`, onclick: () => sortBy(key) }, label, h('span', { class: 'sort-mark text-base-content/50', dataset: { key } }));

  // ---- selection and bulk actions ---------------------------------------------
  const selectAll = h('input', {
    type: 'checkbox',
    class: 'checkbox checkbox-sm',
    testid: 'tokens-select-all',
    'aria-label': t('tokens.selectAll'),
    onchange: () => {
      for (const tok of shown) {
        if (selectAll.checked) selected.add(tok.id);
        else selected.delete(tok.id);
      }
      for (const box of tbody.querySelectorAll('[data-testid="token-select"]')) box.checked = selectAll.checked;
      showBulk();
    },
  });
  const bulkCount = h('span', { class: 'font-medium', testid: 'tokens-bulk-count' });
  const bulkButtons = BULK_ACTIONS.map((action) =>
    h('button', { type: 'button', class: `btn btn-sm ${action === 'delete' ? 'btn-error btn-outline' : ''}`, testid: `tokens-bulk-${action}`, onclick: (e) => bulk(action, e.currentTarget) }, t(`tokens.bulk.${action}`)),
  );
  const bulkExport = h('button', { type: 'button', class: 'btn btn-sm', testid: 'tokens-bulk-export', onclick: () => exportSelection() }, icon('download', 'h-4 w-4'), t('tokens.bulk.export'));
  const bulkBar = h(
    'div',
    { class: 'hidden sticky top-0 z-10 flex flex-wrap items-center gap-2 border-b border-base-300 bg-base-200 px-4 py-2', testid: 'tokens-bulk-bar' },
    bulkCount,
    ...bulkButtons,
    bulkExport,
    h('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'tokens-bulk-clear', onclick: () => { selected.clear(); load(); } }, t('tokens.bulk.clear')),
  );
  function showBulk() {
    bulkBar.classList.toggle('hidden', selected.size === 0);
    bulkCount.textContent = t('tokens.selected', { n: selected.size });
    selectAll.checked = shown.length > 0 && shown.every((tok) => selected.has(tok.id));
  }

  async function bulk(action, btn) {
    const ids = Array.from(selected);
    if (!ids.length) return;
    if (action === 'delete') {
      const ok = await confirmDialog({ title: t('tokens.bulk.deleteTitle'), message: t('tokens.bulk.deleteText', { n: ids.length }), confirmText: t('common.delete') });
      if (!ok) return;
    }
    const done = busy(btn);
    try {
      const res = await api.post('/tokens/bulk', { ids, action });
      const results = (res && res.results) || [];
      const failed = results.filter((r) => !r.ok);
      toast(t('tokens.bulk.done', { ok: results.length - failed.length, failed: failed.length }), failed.length ? 'warning' : 'success');
      showResults(action, results);
      if (action === 'delete') for (const r of results) if (r.ok) selected.delete(r.id);
      load();
    } catch (err) {
      toastError(err);
    } finally {
      done();
    }
  }

  function showResults(action, results) {
    const names = new Map(shown.map((tok) => [tok.id, tokenTitle(tok)]));
    openModal({
      title: `${t('tokens.bulk.resultsTitle')}: ${t(`tokens.bulk.${action}`)}`,
      testid: 'tokens-bulk-results',
      content: h(
        'ul',
        { class: 'divide-y divide-base-300' },
        results.map((r) =>
          h(
            'li',
            { class: 'flex items-start gap-2 py-2', testid: 'tokens-bulk-result', dataset: { id: String(r.id), ok: String(!!r.ok) } },
            h('span', { class: r.ok ? 'text-success' : 'text-error' }, icon(r.ok ? 'checkCircle' : 'xCircle', 'h-5 w-5')),
            h('div', { class: 'min-w-0 flex-1' }, h('div', { class: 'font-medium break-all' }, names.get(r.id) || `#${r.id}`), h('div', { class: `text-sm break-words ${r.ok ? 'text-base-content/60' : 'text-error'}` }, r.ok ? t('tokens.bulk.ok') : (r.error && r.error.message) || '')),
          ),
        ),
      ),
    });
  }

  async function exportSelection() {
    const ids = Array.from(selected);
    if (!ids.length) return;
    const ok = await confirmDialog({ title: t('tokens.exportTitle'), message: t('tokens.exportText'), confirmText: t('tokens.exportConfirm'), danger: false });
    if (!ok) return;
    const done = busy(bulkExport);
    try {
      download(await api.get('/tokens/export', { ids: ids.join(',') }));
    } catch (err) {
      toastError(err);
    } finally {
      done();
    }
  }
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
        h('div', { class: 'join' }, h('div', { class: 'join-item' }, sortSel), h('div', { class: 'join-item' }, orderBtn)),
        h('button', { class: 'btn btn-ghost btn-square ml-auto', title: t('common.refresh'), 'aria-label': t('common.refresh'), testid: 'tokens-reload', onclick: () => load() }, icon('refresh', 'h-4 w-4')),
      ),
      bulkBar,
      h(
        'div',
        { class: 'overflow-x-auto' },
        h(
          'table',
          { class: 'table table-sm cards-sm', testid: 'tokens-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { class: 'w-8' }, selectAll),
              h('th', null, t('tokens.col.account')),
              h('th', null, t('tokens.col.status')),
              h('th', null, sortHeader(t('tokens.col.expiry'), 'expired_at')),
              h('th', null, sortHeader(t('tokens.col.limits'), 'secondary_used_percent')),
              h('th', null, sortHeader(t('tokens.col.activity'), 'usage_count')),
              h('th', { class: 'text-right' }, ''),
            ),
          ),
          tbody,
        ),
      ),
      footer,
    ),
  );

  function syncUrl() {
    replaceParams('tokens', { q: state.q || undefined, status: state.status || undefined, sort: state.sort || undefined, order: state.sort && state.order === 'desc' ? 'desc' : undefined, page: state.page > 1 ? state.page : undefined, page_size: state.pageSize !== 20 ? state.pageSize : undefined });
    showOrder();
    for (const mark of el.querySelectorAll('.sort-mark')) mark.textContent = mark.dataset.key === state.sort ? (state.order === 'desc' ? '↓' : '↑') : '';
  }

  async function load() {
    const my = ++seq;
    syncUrl();
    setChildren(tbody, fullRow(COLS, loadingBlock()));
    try {
      const res = await api.get('/tokens', { page: state.page, page_size: state.pageSize, q: state.q, status: state.status, sort: state.sort, order: state.sort ? state.order : '' });
      if (disposed || my !== seq) return;
      const rows = res.data || [];
      shown = rows;
      showBulk();
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
      setChildren(footer, res.total ? pager({ page: state.page, pageSize: state.pageSize, total: res.total, sizes: SIZES, onChange: (p, s) => { state.page = p; state.pageSize = s; load(); } }) : null);
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
    const pick = h('input', {
      type: 'checkbox',
      class: 'checkbox checkbox-sm',
      testid: 'token-select',
      checked: selected.has(tok.id),
      'aria-label': `${t('tokens.selectRow')} ${title}`,
      onchange: () => {
        if (pick.checked) selected.add(tok.id);
        else selected.delete(tok.id);
        showBulk();
      },
    });
    const reason = tok.reason ? reasonText(tok.reason.code, tok.reason.params, '') : '';
    const lastError = tok.last_error ? reasonText(tok.last_error_code, tok.last_error_params, tok.last_error) : '';

    const tr = h(
      'tr',
      { class: 'hover:bg-base-200/50 align-top', testid: 'token-row', dataset: { id: String(tok.id), name: String(tok.name ?? ''), email: String(tok.email ?? ''), status: String(tok.status ?? '') } },
      h('td', { class: 'w-8' }, pick),
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
        reason && tok.status !== 'cooling_down' ? h('div', { class: 'text-[11px] text-base-content/60 mt-1', testid: 'token-reason', dataset: { code: tok.reason.code } }, reason) : null,
        tok.last_error
          ? h(
              'button',
              {
                type: 'button',
                class: `mt-1 text-left text-xs line-clamp-2 break-words hover:underline cursor-pointer ${tok.last_error_past ? 'text-base-content/50' : 'text-error'}`,
                testid: 'token-last-error',
                dataset: { past: String(!!tok.last_error_past) },
                title: tok.last_error_past ? t('tokens.pastError') : t('tokens.showError'),
                onclick: () => showError(tok),
              },
              lastError,
            )
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
          h('button', { class: 'btn btn-ghost btn-sm btn-square', title: t('tokens.details'), 'aria-label': t('tokens.details'), testid: 'token-details', onclick: () => openDetail(tok.id) }, icon('eye', 'h-4 w-4')),
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
      download(await api.get('/tokens/export'));
    } catch (err) {
      toastError(err);
    } finally {
      done();
    }
  }

  function download(data) {
    const blob = new Blob([JSON.stringify(data ?? [], null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const day = new Date().toISOString().slice(0, 10);
    const a = h('a', { href: url, download: `gpt2api-accounts-${day}.json`, class: 'hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    toast(t('tokens.exported', { n: Array.isArray(data) ? data.length : 0, count: Array.isArray(data) ? data.length : 0 }));
  }

  // ---- detail drawer -------------------------------------------------------
  async function openDetail(id) {
    const body = h('div', { class: 'flex flex-col gap-4' }, loadingBlock());
    const box = h(
      'div',
      { class: 'modal-box h-full max-h-none w-full sm:max-w-xl rounded-none sm:rounded-l-box' },
      h('form', { method: 'dialog' }, h('button', { class: 'btn btn-sm btn-circle btn-ghost absolute right-3 top-3', 'aria-label': t('common.close'), testid: 'dialog-close' }, icon('x', 'h-4 w-4'))),
      body,
    );
    const dialog = h('dialog', { class: 'modal modal-end', testid: 'token-drawer' }, box, h('form', { method: 'dialog', class: 'modal-backdrop' }, h('button', { tabindex: '-1' }, t('common.close'))));
    dialog.addEventListener('close', () => {
      dialog.remove();
      replaceParams('tokens', { ...Object.fromEntries(new URLSearchParams(window.location.hash.split('?')[1] || '')), detail: undefined });
    });
    document.body.append(dialog);
    dialog.showModal();
    const { detail: _, ...rest } = Object.fromEntries(new URLSearchParams(window.location.hash.split('?')[1] || ''));
    replaceParams('tokens', { ...rest, detail: id });

    async function render() {
      let d;
      try {
        d = await api.get(`/tokens/${seg(id)}/detail`);
      } catch (err) {
        setChildren(body, errorBlock(err, render));
        return;
      }
      const tok = d.token;
      const stat = (label, v) => h('div', { class: 'stat p-2' }, h('div', { class: 'stat-title text-xs' }, label), h('div', { class: 'stat-value text-lg tabular-nums' }, fmtNum(v)));
      const period = (key, s) =>
        h(
          'div',
          { class: 'rounded-box border border-base-300', testid: `token-drawer-stats-${key}` },
          h('div', { class: 'px-3 pt-2 text-sm font-medium' }, t(`tokens.drawer.${key}`)),
          h('div', { class: 'stats stats-horizontal w-full' }, stat(t('tokens.drawer.requests'), s.requests), stat(t('tokens.drawer.errors'), s.errors), stat(t('tokens.drawer.tokens'), (s.input_tokens || 0) + (s.output_tokens || 0))),
        );
      const history = d.usage_history || [];
      const historyRows = history.slice(-30).reverse();
      const testBtn = h('button', { type: 'button', class: 'btn btn-sm btn-primary', testid: 'token-drawer-test', onclick: () => action('probe', testBtn) }, icon('zap', 'h-4 w-4'), t('tokens.drawer.test'));
      const refreshBtn = h('button', { type: 'button', class: 'btn btn-sm', testid: 'token-drawer-refresh', onclick: () => action('refresh', refreshBtn) }, icon('refresh', 'h-4 w-4'), t('tokens.refresh'));
      const toggleBtn = h('button', { type: 'button', class: 'btn btn-sm', testid: 'token-drawer-toggle', onclick: () => action(tok.is_active ? 'disable' : 'enable', toggleBtn) }, icon('power', 'h-4 w-4'), t(tok.is_active ? 'tokens.disable' : 'tokens.enable'));
      setChildren(
        body,
        h('div', null, h('h3', { class: 'text-lg font-semibold pr-8 break-words', testid: 'token-drawer-title' }, tokenTitle(tok)), h('div', { class: 'flex flex-wrap items-center gap-2 mt-1' }, statusBadge(tok.status), tok.reason ? h('span', { class: 'text-xs text-base-content/60' }, reasonText(tok.reason.code, tok.reason.params, '')) : null)),
        h('div', { class: 'flex flex-wrap gap-2' }, testBtn, refreshBtn, toggleBtn),
        tok.last_error ? h('div', { class: `text-sm break-words ${tok.last_error_past ? 'text-base-content/50' : 'text-error'}`, testid: 'token-drawer-error', dataset: { past: String(!!tok.last_error_past) } }, reasonText(tok.last_error_code, tok.last_error_params, tok.last_error), tok.last_error_at ? ` · ${fmtRelative(tok.last_error_at)}` : '') : null,
        tok.last_success_at ? h('div', { class: 'text-xs text-base-content/60' }, `${t('tokens.drawer.lastSuccess')}: ${fmtDateTime(tok.last_success_at)} (${fmtRelative(tok.last_success_at)})`) : null,
        period('24h', d.stats['24h']),
        period('7d', d.stats['7d']),
        h(
          'div',
          { testid: 'token-drawer-history' },
          h('div', { class: 'text-sm font-medium mb-1' }, t('tokens.drawer.history')),
          historyRows.length
            ? h(
                'table',
                { class: 'table table-xs' },
                h('thead', null, h('tr', null, h('th', null, ''), h('th', null, t('tokens.window5h')), h('th', null, t('tokens.windowWeek')))),
                h('tbody', null, historyRows.map((s) => h('tr', { testid: 'token-drawer-history-row' }, h('td', { class: 'whitespace-nowrap' }, fmtDateTime(s.ts)), h('td', { class: 'tabular-nums' }, s.primary_used_percent == null ? '—' : `${Math.round(s.primary_used_percent)}%`), h('td', { class: 'tabular-nums' }, s.secondary_used_percent == null ? '—' : `${Math.round(s.secondary_used_percent)}%`)))),
              )
            : h('div', { class: 'text-sm text-base-content/60' }, t('tokens.drawer.noHistory')),
        ),
        h(
          'div',
          { testid: 'token-drawer-logs' },
          h('div', { class: 'flex items-center justify-between mb-1' }, h('span', { class: 'text-sm font-medium' }, t('tokens.drawer.logs')), h('a', { class: 'link text-sm', href: hashFor('logs', { token_id: tok.id }), testid: 'token-drawer-all-logs' }, t('tokens.drawer.allLogs'))),
          (d.logs || []).length
            ? h(
                'ul',
                { class: 'divide-y divide-base-300 text-sm' },
                d.logs.map((log) =>
                  h(
                    'li',
                    { class: 'flex flex-wrap items-center gap-x-2 py-1', testid: 'token-drawer-log' },
                    h('span', { class: `badge badge-xs tabular-nums ${log.status_code >= 400 ? 'badge-error' : 'badge-success'}` }, String(log.status_code)),
                    h('span', { class: 'text-xs tabular-nums text-base-content/60' }, fmtDateTime(log.created_at, true)),
                    h('span', { class: 'font-medium' }, log.model),
                    log.request_id ? h('a', { class: 'link link-hover font-mono text-[11px] break-all', href: hashFor('logs', { request_id: log.request_id }) }, log.request_id) : null,
                    log.error_message ? h('span', { class: 'basis-full text-xs text-error break-words' }, logError(log)) : null,
                  ),
                ),
              )
            : h('div', { class: 'text-sm text-base-content/60' }, t('tokens.drawer.noLogs')),
        ),
      );

      async function action(name, btn) {
        const done = busy(btn);
        try {
          const res = await api.post('/tokens/bulk', { ids: [tok.id], action: name });
          const r = res && res.results && res.results[0];
          if (r && r.ok) toast(name === 'probe' ? t('tokens.drawer.tested') : t('tokens.bulk.done', { ok: 1, failed: 0 }));
          else toast((r && r.error && r.error.message) || t('error.unknown'), 'error');
        } catch (err) {
          toastError(err);
        } finally {
          done();
        }
        render();
        load();
      }
    }
    render();
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
  if (Number(params.get('detail')) > 0) openDetail(Number(params.get('detail')));
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
