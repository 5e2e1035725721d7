// Admins page (owners only): list, create with a one-time password shown
// once, change role, disable or enable, delete. The last enabled owner is
// protected by the server (409 last_owner), shown as an error toast.

import { api, seg } from './api.js';
import { t, fmtDateTime } from './i18n.js';
import { h, icon, setChildren, toast, toastError, openModal, confirmDialog, pageHeader, field, busy, loadingBlock, errorBlock, fullRow } from './ui.js';

export const ROLES = ['owner', 'operator', 'viewer'];

export function mount(el, { session }) {
  let disposed = false;
  const tbody = h('tbody', { testid: 'admins-tbody' });

  setChildren(
    el,
    pageHeader(t('nav.admins'), t('admins.subtitle'), h('button', { class: 'btn btn-primary', testid: 'admins-create-button', onclick: () => openCreate() }, icon('plus'), t('admins.create'))),
    h(
      'div',
      { class: 'card bg-base-100 border border-base-300 overflow-x-auto' },
      h(
        'table',
        { class: 'table table-sm', testid: 'admins-table' },
        h('thead', null, h('tr', null, [t('admins.col.username'), t('admins.col.role'), t('admins.col.status'), t('admins.col.totp'), t('admins.col.created'), ''].map((c) => h('th', null, c)))),
        tbody,
      ),
    ),
  );

  async function load() {
    setChildren(tbody, fullRow(6, loadingBlock()));
    try {
      const res = await api.get('/admins', { page: 1, page_size: 200 });
      if (disposed) return;
      setChildren(tbody, res.data.map(row));
    } catch (err) {
      if (!disposed) setChildren(tbody, fullRow(6, errorBlock(err, load)));
    }
  }

  function row(a) {
    const self = session.profile && session.profile.id === a.id;
    const role = h(
      'select',
      {
        class: 'select select-sm w-auto',
        testid: 'admin-role',
        'aria-label': t('admins.col.role'),
        onchange: async (e) => {
          try {
            await api.patch(`/admins/${seg(a.id)}`, { role: e.target.value });
            toast(t('admins.updated'));
          } catch (err) {
            toastError(err);
          }
          load();
        },
      },
      ROLES.map((r) => h('option', { value: r, selected: r === a.role }, t(`role.${r}`))),
    );
    const toggle = h(
      'button',
      {
        class: 'btn btn-ghost btn-sm',
        testid: a.disabled ? 'admin-enable' : 'admin-disable',
        onclick: async () => {
          try {
            await api.patch(`/admins/${seg(a.id)}`, { disabled: !a.disabled });
            toast(t('admins.updated'));
          } catch (err) {
            toastError(err);
          }
          load();
        },
      },
      icon('power', 'h-4 w-4'),
      a.disabled ? t('admins.enable') : t('admins.disable'),
    );
    const del = h(
      'button',
      {
        class: 'btn btn-ghost btn-sm btn-square text-error',
        testid: 'admin-delete',
        title: t('common.delete'),
        'aria-label': t('common.delete'),
        onclick: async () => {
          const ok = await confirmDialog({ title: t('admins.deleteTitle'), message: t('admins.deleteText', { name: a.username }), confirmText: t('common.delete') });
          if (!ok) return;
          try {
            await api.del(`/admins/${seg(a.id)}`);
            toast(t('admins.deleted'));
          } catch (err) {
            toastError(err);
          }
          load();
        },
      },
      icon('trash', 'h-4 w-4'),
    );
    return h(
      'tr',
      { testid: 'admin-row', dataset: { username: a.username, role: a.role, disabled: String(a.disabled) } },
      h('td', { class: 'font-medium' }, a.username, self ? h('span', { class: 'badge badge-sm badge-ghost ml-2' }, t('admins.you')) : null),
      h('td', null, role),
      h('td', null, h('span', { class: `badge badge-sm ${a.disabled ? 'badge-error' : 'badge-success'}`, testid: 'admin-status' }, a.disabled ? t('admins.disabled') : t('admins.active'))),
      h('td', null, a.totp_enabled ? h('span', { class: 'badge badge-sm badge-info' }, t('admins.totpOn')) : h('span', { class: 'text-base-content/50' }, '—')),
      h('td', { class: 'whitespace-nowrap' }, fmtDateTime(a.created_at)),
      h('td', { class: 'text-right whitespace-nowrap' }, toggle, del),
    );
  }

  function openCreate() {
    const username = h('input', { class: 'input w-full', testid: 'admin-form-username', autocomplete: 'off', required: true });
    const role = h('select', { class: 'select w-full', testid: 'admin-form-role' }, ROLES.map((r) => h('option', { value: r, selected: r === 'operator' }, t(`role.${r}`))));
    const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'admin-form-error' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'admin-form-submit' }, icon('plus', 'h-4 w-4'), t('admins.create'));
    const form = h(
      'form',
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          const done = busy(submit);
          try {
            const created = await api.post('/admins', { username: username.value.trim(), role: role.value });
            m.close();
            showPassword(created);
            load();
          } catch (err) {
            done();
            errorBox.textContent = err.message;
            errorBox.classList.remove('hidden');
          }
        },
      },
      errorBox,
      field(t('admins.col.username'), username),
      field(t('admins.col.role'), role, t('admins.roleHint')),
      h('div', { class: 'modal-action' }, submit),
    );
    const m = openModal({ title: t('admins.create'), content: form, testid: 'admin-form' });
    setTimeout(() => username.focus(), 0);
  }

  function showPassword(created) {
    const content = h(
      'div',
      { class: 'flex flex-col gap-3' },
      h('div', { role: 'status', class: 'alert alert-warning text-sm' }, icon('alert', 'h-4 w-4'), t('admins.onceText', { name: created.username })),
      h('code', { class: 'block rounded bg-base-200 p-3 text-lg break-all select-all', testid: 'admin-once-password' }, created.password),
      h('div', { class: 'modal-action' }, h('button', { class: 'btn btn-primary', testid: 'admin-once-done', onclick: () => m.close() }, t('common.close'))),
    );
    const m = openModal({ title: t('admins.onceTitle'), content, testid: 'admin-once' });
  }

  load();
  return () => {
    disposed = true;
  };
}
