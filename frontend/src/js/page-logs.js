// Request logs: a search box (a request id, or text in the error, model, key name or account
// e-mail), filters (status, key, account, model, time range), paging, CSV export of the
// filtered rows, and a detail dialog with the full error, the request id and the upstream
// attempts of a request.

import { api } from './api.js';
import { t, fmtNum, fmtDateTime, fmtRelative } from './i18n.js';
import { h, icon, setChildren, pageHeader, pager, fullRow, loadingBlock, emptyBlock, errorBlock, openModal, field, toLocalInput, fromLocalInput, copyText, toast } from './ui.js';
import { replaceParams, hashFor } from './router.js';
import { logError, reasonText } from './reasons.js';

const COLS = 8;
const SIZES = [20, 50, 100, 200];
const FILTER_KEYS = ['status', 'api_key_id', 'token_id', 'model', 'since', 'until', 'request_id', 'q'];

/** What the search box holds is a request id (looked up exactly) when it looks like one. */
const REQUEST_ID = /^(req[_-])?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function isError(log) {
  return (log.status_code && log.status_code >= 400) || !!log.error_message;
}

export function mount(el, { params }) {
  const filters = {};
  for (const k of FILTER_KEYS) filters[k] = params.get(k) || '';
  if (!['success', 'error'].includes(filters.status)) filters.status = '';
  const state = {
    page: Math.max(1, Number(params.get('page')) || 1),
    pageSize: SIZES.includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 50,
  };
  let disposed = false;
  let seq = 0;

  // ---- filter controls ----------------------------------------------------
  const statusSel = h(
    'select',
    { class: 'select w-full', testid: 'logs-filter-status' },
    h('option', { value: '' }, t('logs.allStatuses')),
    h('option', { value: 'success', selected: filters.status === 'success' }, t('logs.success')),
    h('option', { value: 'error', selected: filters.status === 'error' }, t('logs.error')),
  );
  const keySel = h('select', { class: 'select w-full', testid: 'logs-filter-key' }, h('option', { value: '' }, t('logs.allKeys')));
  const accountSel = h('select', { class: 'select w-full', testid: 'logs-filter-account' }, h('option', { value: '' }, t('logs.allAccounts')));
  const modelList = h('datalist', { id: 'logs-models' });
  const modelInput = h('input', { class: 'input w-full', testid: 'logs-filter-model', value: filters.model, list: 'logs-models', placeholder: t('logs.anyModel') });
  const sinceInput = h('input', { type: 'datetime-local', class: 'input w-full', testid: 'logs-filter-since', value: toLocalInput(filters.since) });
  const untilInput = h('input', { type: 'datetime-local', class: 'input w-full', testid: 'logs-filter-until', value: toLocalInput(filters.until) });
  const searchInput = h('input', { type: 'search', class: 'grow', testid: 'logs-search', value: filters.request_id || filters.q, placeholder: t('logs.search'), title: t('logs.searchHint'), 'aria-label': t('logs.search') });
  const exportLink = h('a', { class: 'btn', testid: 'logs-export', download: 'gpt2api-logs.csv', href: '#' }, icon('download', 'h-4 w-4'), t('logs.exportCsv'));

  // Selects that were given an id from the address keep it until the list arrives.
  function ensureOption(sel, value) {
    if (value && !Array.from(sel.options).some((o) => o.value === value)) sel.append(h('option', { value }, `#${value}`));
    sel.value = value;
  }
  ensureOption(keySel, filters.api_key_id);
  ensureOption(accountSel, filters.token_id);

  function readFilters() {
    filters.status = statusSel.value;
    filters.api_key_id = keySel.value;
    filters.token_id = accountSel.value;
    filters.model = modelInput.value.trim();
    filters.since = fromLocalInput(sinceInput.value) || '';
    filters.until = fromLocalInput(untilInput.value) || '';
    const text = searchInput.value.trim();
    filters.request_id = REQUEST_ID.test(text) ? text : '';
    filters.q = filters.request_id ? '' : text;
  }

  function apply() {
    readFilters();
    state.page = 1;
    load();
  }

  function quickRange(hours) {
    sinceInput.value = toLocalInput(new Date(Date.now() - hours * 3600_000).toISOString());
    untilInput.value = '';
    apply();
  }

  function reset() {
    statusSel.value = keySel.value = accountSel.value = '';
    modelInput.value = sinceInput.value = untilInput.value = searchInput.value = '';
    apply();
  }

  for (const c of [statusSel, keySel, accountSel, sinceInput, untilInput]) c.addEventListener('change', apply);
  modelInput.addEventListener('change', apply);
  // `change` fires on Enter and when the box is left: one search each time.
  searchInput.addEventListener('change', apply);

  const activeCount = () => FILTER_KEYS.filter((k) => filters[k]).length;
  const filterCountBadge = h('span', { class: 'badge badge-sm badge-primary' });
  // On a phone the six filters would fill the screen: they fold behind a button.
  const filterToggle = h(
    'button',
    {
      type: 'button',
      class: 'btn btn-sm btn-ghost m-3 mb-0 sm:hidden',
      testid: 'logs-filter-toggle',
      'aria-expanded': 'false',
      onclick: () => {
        const open = filterForm.classList.toggle('hidden');
        filterToggle.setAttribute('aria-expanded', String(!open));
      },
    },
    icon('filter', 'h-4 w-4'),
    t('logs.filters'),
    filterCountBadge,
  );
  const showCount = () => {
    const n = activeCount();
    filterCountBadge.textContent = String(n);
    filterCountBadge.classList.toggle('hidden', n === 0);
  };

  const filterForm = h(
    'form',
    {
      class: 'hidden sm:grid grid-cols-1 gap-x-3 gap-y-1 p-4 border-b border-base-300 sm:grid-cols-2 lg:grid-cols-3 2xl:grid-cols-6 [&>*]:min-w-0',
      testid: 'logs-filters',
      onsubmit: (e) => {
        e.preventDefault();
        apply();
      },
    },
    field(t('logs.status'), statusSel),
    field(t('logs.key'), keySel),
    field(t('logs.account'), accountSel),
    field(t('logs.model'), h('div', null, modelInput, modelList)),
    field(t('logs.since'), sinceInput),
    field(t('logs.until'), untilInput),
    h(
      'div',
      { class: 'flex flex-wrap items-center gap-2 pt-2 sm:col-span-2 lg:col-span-3 2xl:col-span-6' },
      h('span', { class: 'text-sm text-base-content/60' }, t('logs.quick')),
      h('button', { type: 'button', class: 'btn btn-xs', testid: 'logs-range-1h', onclick: () => quickRange(1) }, t('logs.last1h')),
      h('button', { type: 'button', class: 'btn btn-xs', testid: 'logs-range-24h', onclick: () => quickRange(24) }, t('logs.last24h')),
      h('button', { type: 'button', class: 'btn btn-xs', testid: 'logs-range-7d', onclick: () => quickRange(24 * 7) }, t('logs.last7d')),
      h('div', { class: 'grow' }),
      h('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'logs-filter-reset', onclick: reset }, icon('x', 'h-4 w-4'), t('logs.reset')),
      h('button', { type: 'submit', class: 'btn btn-primary btn-sm', testid: 'logs-filter-apply' }, icon('filter', 'h-4 w-4'), t('logs.apply')),
    ),
  );

  const tbody = h('tbody', { testid: 'logs-tbody' });
  const footer = h('div');
  const totalBadge = h('span', { class: 'badge badge-ghost', testid: 'logs-total' }, '');

  setChildren(
    el,
    pageHeader(t('nav.logs'), t('logs.subtitle'), exportLink, h('button', { class: 'btn', testid: 'logs-reload', onclick: () => load() }, icon('refresh', 'h-4 w-4'), t('common.refresh'))),
    h(
      'div',
      { class: 'card bg-base-100 shadow-sm border border-base-300' },
      h('div', { class: 'px-4 pt-4' }, h('label', { class: 'input w-full' }, icon('search', 'h-4 w-4 opacity-50'), searchInput)),
      filterToggle,
      filterForm,
      h('div', { class: 'flex items-center gap-2 px-4 pt-3 text-sm text-base-content/60' }, t('logs.results'), totalBadge),
      h(
        'div',
        { class: 'overflow-x-auto' },
        h(
          'table',
          { class: 'table table-sm cards-sm', testid: 'logs-table' },
          h('thead', null, h('tr', null, [t('logs.col.time'), t('logs.col.status'), t('logs.col.model'), t('logs.col.keyAccount'), t('logs.col.endpoint'), t('logs.col.tokens'), t('logs.col.latency'), ''].map((c) => h('th', null, c)))),
          tbody,
        ),
      ),
      footer,
    ),
  );

  // ---- option lists -------------------------------------------------------
  async function loadOptions() {
    const [keys, tokens, usage] = await Promise.allSettled([
      api.get('/api-keys', { page: 1, page_size: 100 }),
      api.get('/tokens', { page: 1, page_size: 100 }),
      api.get('/stats/usage', { range: '30d' }),
    ]);
    if (disposed) return;
    if (keys.status === 'fulfilled') {
      const cur = keySel.value;
      keySel.replaceChildren(h('option', { value: '' }, t('logs.allKeys')), ...(keys.value.data || []).map((k) => h('option', { value: String(k.id) }, `${k.name} (${k.masked_key || k.id})`)));
      ensureOption(keySel, cur);
    }
    if (tokens.status === 'fulfilled') {
      const cur = accountSel.value;
      accountSel.replaceChildren(h('option', { value: '' }, t('logs.allAccounts')), ...(tokens.value.data || []).map((x) => h('option', { value: String(x.id) }, x.name && x.email && x.name !== x.email ? `${x.name} (${x.email})` : x.name || x.email || `#${x.id}`)));
      ensureOption(accountSel, cur);
    }
    if (usage.status === 'fulfilled') {
      modelList.replaceChildren(...(usage.value.by_model || []).map((m) => h('option', { value: String(m.model) })));
    }
  }

  // ---- table --------------------------------------------------------------
  function syncUrl() {
    const p = {};
    for (const k of FILTER_KEYS) if (filters[k]) p[k] = filters[k];
    if (state.page > 1) p.page = state.page;
    if (state.pageSize !== 50) p.page_size = state.pageSize;
    replaceParams('logs', p);
  }

  function exportHref() {
    const qs = new URLSearchParams();
    for (const k of FILTER_KEYS) if (filters[k]) qs.set(k, filters[k]);
    const s = qs.toString();
    return `/admin/logs/export${s ? `?${s}` : ''}`;
  }

  async function load() {
    const my = ++seq;
    syncUrl();
    exportLink.setAttribute('href', exportHref());
    showCount();
    setChildren(tbody, fullRow(COLS, loadingBlock()));
    try {
      const q = { page: state.page, page_size: state.pageSize };
      for (const k of FILTER_KEYS) if (filters[k]) q[k] = filters[k];
      const res = await api.get('/logs', q);
      if (disposed || my !== seq) return;
      const rows = res.data || [];
      totalBadge.textContent = fmtNum(res.total || 0);
      if (!rows.length) {
        const filtered = FILTER_KEYS.some((k) => filters[k]);
        setChildren(tbody, fullRow(COLS, filtered ? emptyBlock(t('logs.noMatch'), t('logs.noMatchHint'), 'filter') : emptyBlock(t('logs.empty'), t('logs.emptyHint'), 'logs')));
      } else {
        setChildren(tbody, rows.flatMap(row));
      }
      setChildren(footer, res.total ? pager({ page: state.page, pageSize: state.pageSize, total: res.total, sizes: SIZES, onChange: (p, s) => { state.page = p; state.pageSize = s; load(); } }) : null);
    } catch (err) {
      if (disposed || my !== seq || err.status === 401) return;
      totalBadge.textContent = '';
      setChildren(tbody, fullRow(COLS, errorBlock(err, load)));
      setChildren(footer);
    }
  }

  function codeBadge(log) {
    const bad = isError(log);
    return h('span', { class: `badge badge-sm tabular-nums ${bad ? 'badge-error' : 'badge-success'}`, testid: 'log-status', dataset: { status: bad ? 'error' : 'success' } }, log.status_code ? String(log.status_code) : bad ? t('logs.error') : 'OK');
  }

  function row(log) {
    const bad = isError(log);
    const open = () => showDetail(log);
    const main = h(
      'tr',
      { class: `hover:bg-base-200/50 cursor-pointer ${bad && log.error_message ? 'border-b-0' : ''}`, testid: 'log-row', dataset: { id: String(log.id), status: bad ? 'error' : 'success' }, onclick: open },
      h('td', { class: 'whitespace-nowrap text-xs tabular-nums', title: fmtRelative(log.created_at) }, fmtDateTime(log.created_at, true)),
      h('td', null, codeBadge(log)),
      h('td', { class: 'whitespace-nowrap font-medium' }, log.model || '—'),
      h(
        'td',
        { class: 'max-w-52' },
        h('div', { class: 'truncate', title: log.api_key_name || '', testid: 'log-key' }, log.api_key_name || (log.api_key_id ? `#${log.api_key_id}` : '—')),
        h('div', { class: 'truncate text-xs text-base-content/60', title: log.token_email || '', testid: 'log-account' }, log.token_email || (log.token_id ? `#${log.token_id}` : '—')),
      ),
      h('td', { class: 'whitespace-nowrap text-xs' }, h('code', null, log.endpoint || '—'), log.stream ? h('span', { class: 'badge badge-xs badge-ghost ml-1' }, t('logs.stream')) : null, log.transport === 'websocket' ? h('span', { class: 'badge badge-xs badge-info badge-outline ml-1', title: t('logs.websocket'), testid: 'log-transport' }, t('logs.ws')) : null),
      h(
        'td',
        { class: 'whitespace-nowrap text-xs tabular-nums' },
        h('div', null, `${fmtNum(log.input_tokens || 0)} → ${fmtNum(log.output_tokens || 0)}`),
        log.cached_tokens || log.reasoning_tokens ? h('div', { class: 'text-base-content/50' }, [log.cached_tokens ? t('logs.cached', { n: fmtNum(log.cached_tokens) }) : null, log.reasoning_tokens ? t('logs.reasoning', { n: fmtNum(log.reasoning_tokens) }) : null].filter(Boolean).join(' · ')) : null,
      ),
      h(
        'td',
        { class: 'whitespace-nowrap text-xs tabular-nums' },
        h('div', null, log.latency_ms != null ? t('logs.ms', { n: fmtNum(log.latency_ms) }) : '—'),
        log.ttft_ms != null ? h('div', { class: 'text-base-content/50' }, t('logs.ttft', { n: fmtNum(log.ttft_ms) })) : null,
      ),
      h('td', { class: 'text-right' }, h('button', { type: 'button', class: 'btn btn-ghost btn-xs btn-square', title: t('logs.details'), 'aria-label': t('logs.details'), testid: 'log-detail-button', onclick: (e) => { e.stopPropagation(); open(); } }, icon('eye', 'h-4 w-4'))),
    );
    if (!(bad && log.error_message)) return [main];
    const errRow = h(
      'tr',
      { class: 'hover:bg-base-200/50 cursor-pointer', testid: 'log-error-row', dataset: { id: String(log.id) }, onclick: open },
      h('td', { colspan: String(COLS), class: 'pt-0' }, h('div', { class: 'flex items-start gap-2 text-xs text-error' }, icon('alert', 'h-3.5 w-3.5 mt-0.5'), h('span', { class: 'line-clamp-1 break-all', testid: 'log-error-snippet', title: log.error_message }, logError(log)))),
    );
    return [main, errRow];
  }

  function attemptTrail(log) {
    const attempts = Array.isArray(log.attempts) ? log.attempts : [];
    if (!attempts.length) return h('p', { class: 'text-sm text-base-content/60', testid: 'log-attempts-empty' }, t('logs.noAttempts'));
    return h(
      'ol',
      { class: 'flex flex-col gap-2', testid: 'log-attempts' },
      attempts.map((a, i) => {
        const ok = a.status < 400 && !a.error;
        return h(
          'li',
          { class: `flex flex-wrap items-center gap-x-3 gap-y-1 rounded-box border p-2 text-sm ${ok ? 'border-success/40' : 'border-error/40'}`, testid: 'log-attempt', dataset: { status: String(a.status), token: String(a.token_id) } },
          h('span', { class: 'text-xs text-base-content/60' }, t('logs.attemptN', { n: i + 1 })),
          h('span', { class: `badge badge-sm tabular-nums ${ok ? 'badge-success' : 'badge-error'}` }, String(a.status)),
          h('a', { class: 'link link-hover min-w-0 break-all', href: hashFor('logs', { token_id: a.token_id }), testid: 'log-attempt-account' }, a.token_email || `#${a.token_id}`),
          h('span', { class: 'text-xs tabular-nums text-base-content/60' }, t('logs.ms', { n: fmtNum(a.latency_ms || 0) })),
          a.error ? h('div', { class: 'basis-full text-xs text-error break-words', testid: 'log-attempt-error' }, reasonText(null, null, a.error)) : null,
        );
      }),
    );
  }

  function showDetail(log) {
    const item = (label, value, mono = false) => h('div', { class: 'flex flex-col' }, h('dt', { class: 'text-xs text-base-content/60' }, label), h('dd', { class: `break-all ${mono ? 'font-mono text-sm' : ''}` }, value === null || value === undefined || value === '' ? '—' : String(value)));
    const copyBtn = log.request_id
      ? h('button', {
          type: 'button',
          class: 'btn btn-ghost btn-xs',
          testid: 'log-request-id-copy',
          onclick: async () => {
            if (await copyText(log.request_id)) toast(t('logs.copied'));
          },
        }, icon('copy', 'h-3.5 w-3.5'), t('logs.copy'))
      : null;
    const links = h(
      'div',
      { class: 'flex flex-wrap gap-2' },
      log.api_key_id ? h('a', { class: 'btn btn-sm', href: hashFor('logs', { api_key_id: log.api_key_id }), testid: 'log-link-key' }, icon('key', 'h-4 w-4'), t('logs.viewKey')) : null,
      log.token_id ? h('a', { class: 'btn btn-sm', href: hashFor('logs', { token_id: log.token_id }), testid: 'log-link-account' }, icon('users', 'h-4 w-4'), t('logs.viewAccount')) : null,
      log.token_id ? h('a', { class: 'btn btn-sm', href: hashFor('tokens', { detail: log.token_id }), testid: 'log-link-account-detail' }, icon('eye', 'h-4 w-4'), t('tokens.details')) : null,
    );
    const content = h(
      'div',
      { class: 'flex flex-col gap-4' },
      h('div', { class: 'flex items-center gap-2' }, codeBadge(log), h('span', { class: 'text-sm text-base-content/60' }, fmtDateTime(log.created_at, true))),
      h(
        'div',
        { class: 'flex flex-wrap items-center gap-2' },
        h('span', { class: 'text-xs text-base-content/60' }, t('logs.requestId')),
        h('code', { class: 'font-mono text-sm break-all', testid: 'log-request-id' }, log.request_id || '—'),
        copyBtn,
      ),
      log.error_message
        ? h(
            'div',
            null,
            h('div', { class: 'text-sm font-medium mb-1' }, t('logs.fullError')),
            log.error_code ? h('div', { class: 'text-sm text-error mb-1', testid: 'log-detail-reason' }, logError(log)) : null,
            h('pre', { class: 'whitespace-pre-wrap break-all rounded-box bg-error/10 text-error p-3 text-sm max-h-72 overflow-auto', testid: 'log-detail-error' }, log.error_message),
          )
        : null,
      h('div', null, h('div', { class: 'text-sm font-medium mb-2' }, t('logs.attempts')), attemptTrail(log)),
      links,
      h(
        'dl',
        { class: 'grid grid-cols-2 gap-3 sm:grid-cols-3', testid: 'log-detail-fields' },
        item(t('logs.col.model'), log.model),
        item(t('logs.col.endpoint'), log.endpoint, true),
        item(t('logs.stream'), log.stream ? t('common.yes') : t('common.no')),
        item(t('logs.transport'), log.transport === 'websocket' ? t('logs.websocket') : 'HTTP'),
        item(t('logs.col.key'), log.api_key_name ? `${log.api_key_name} (#${log.api_key_id})` : log.api_key_id),
        item(t('logs.col.account'), log.token_email ? `${log.token_email} (#${log.token_id})` : log.token_id),
        item(t('logs.logId'), log.id, true),
        item(t('logs.inputTokens'), fmtNum(log.input_tokens || 0)),
        item(t('logs.outputTokens'), fmtNum(log.output_tokens || 0)),
        item(t('logs.cachedTokens'), fmtNum(log.cached_tokens || 0)),
        item(t('logs.reasoningTokens'), fmtNum(log.reasoning_tokens || 0)),
        item(t('logs.col.latency'), log.latency_ms != null ? t('logs.ms', { n: fmtNum(log.latency_ms) }) : null),
        item(t('logs.ttftLabel'), log.ttft_ms != null ? t('logs.ms', { n: fmtNum(log.ttft_ms) }) : null),
      ),
    );
    openModal({ title: t('logs.detailTitle'), content, testid: 'log-detail-dialog', wide: true });
  }

  loadOptions();
  load();

  return () => {
    disposed = true;
  };
}
