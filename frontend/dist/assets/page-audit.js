// Audit page: who changed what, newest first, with filters and paging.
// Readable by every role.

import { api } from './api.js';
import { t, fmtDateTime } from './i18n.js';
import { h, icon, setChildren, pageHeader, pager, loadingBlock, errorBlock, emptyBlock, fullRow } from './ui.js';

export function mount(el) {
  let disposed = false;
  const state = { page: 1, pageSize: 50 };
  const input = (testid, placeholder) => h('input', { class: 'input input-sm w-44', testid, placeholder, 'aria-label': placeholder });
  const actor = input('audit-actor', t('audit.actor'));
  const action = input('audit-action', t('audit.action'));
  const target = input('audit-target', t('audit.target'));
  const tbody = h('tbody', { testid: 'audit-tbody' });
  const footer = h('div');

  const filters = h(
    'form',
    {
      class: 'flex flex-wrap items-center gap-2 p-4 border-b border-base-300',
      testid: 'audit-filters',
      onsubmit: (e) => {
        e.preventDefault();
        state.page = 1;
        load();
      },
    },
    actor,
    action,
    target,
    h('button', { type: 'submit', class: 'btn btn-sm', testid: 'audit-apply' }, icon('filter', 'h-4 w-4'), t('audit.apply')),
  );

  setChildren(
    el,
    pageHeader(t('nav.audit'), t('audit.subtitle')),
    h(
      'div',
      { class: 'card bg-base-100 border border-base-300' },
      filters,
      h(
        'div',
        { class: 'overflow-x-auto' },
        h(
          'table',
          { class: 'table table-sm', testid: 'audit-table' },
          h('thead', null, h('tr', null, [t('audit.col.time'), t('audit.actor'), t('audit.col.role'), t('audit.action'), t('audit.target'), t('audit.col.summary'), t('audit.col.ip')].map((c) => h('th', null, c)))),
          tbody,
        ),
      ),
      footer,
    ),
  );

  async function load() {
    setChildren(tbody, fullRow(7, loadingBlock()));
    try {
      const res = await api.get('/audit', { page: state.page, page_size: state.pageSize, actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim() });
      if (disposed) return;
      setChildren(tbody, res.data.length ? res.data.map(row) : fullRow(7, emptyBlock(t('audit.empty'))));
      setChildren(
        footer,
        pager({
          page: res.page,
          pageSize: res.page_size,
          total: res.total,
          sizes: [20, 50, 100, 200],
          onChange: (page, size) => {
            state.page = page;
            state.pageSize = size;
            load();
          },
        }),
      );
    } catch (err) {
      if (!disposed) setChildren(tbody, fullRow(7, errorBlock(err, load)));
    }
  }

  function row(r) {
    const summary = r.summary && Object.keys(r.summary).length ? JSON.stringify(r.summary) : '';
    return h(
      'tr',
      { testid: 'audit-row', dataset: { action: r.action } },
      h('td', { class: 'whitespace-nowrap' }, fmtDateTime(r.created_at, true)),
      h('td', { class: 'font-medium' }, r.actor || '—'),
      h('td', null, r.role ? t(`role.${r.role}`) : '—'),
      h('td', null, h('code', { class: 'text-xs' }, r.action)),
      h('td', { class: 'break-all' }, r.target || ''),
      h('td', { class: 'max-w-md break-all text-xs text-base-content/70', testid: 'audit-summary' }, summary),
      h('td', { class: 'whitespace-nowrap text-xs' }, r.client_ip || ''),
    );
  }

  load();
  return () => {
    disposed = true;
  };
}
