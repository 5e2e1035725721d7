// DOM helpers shared by the pages.
//
// Everything that comes from the API is inserted as text: h() turns strings
// into text nodes and never parses markup, so a name such as
// <img src=x onerror=alert(1)> is displayed literally.

import { t, fmtNum } from './i18n.js';
import { icon } from './icons.js';

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'indeterminate', 'hidden', 'readOnly', 'required', 'multiple']);

/**
 * h('button', {class: 'btn', testid: 'save', onclick: fn}, 'Save')
 * - `testid` sets data-testid; `dataset` sets data-* attributes;
 * - on* functions become event listeners; null/false attributes are skipped;
 * - children may be nodes, strings, numbers, arrays, null or false.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'testid') el.dataset.testid = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces all children of el. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export { icon };

// ---- toasts ---------------------------------------------------------------

/** Shows a short message; kind is success | error | info | warning. */
export function toast(message, kind = 'success') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const cls = { success: 'alert-success', error: 'alert-error', info: 'alert-info', warning: 'alert-warning' }[kind] || 'alert-info';
  const ic = { success: 'checkCircle', error: 'xCircle', warning: 'alert', info: 'info' }[kind] || 'info';
  const el = h(
    'div',
    { role: kind === 'error' ? 'alert' : 'status', class: `alert ${cls} max-w-sm shadow-lg cursor-pointer text-sm`, testid: 'toast', dataset: { kind } },
    icon(ic),
    h('span', { class: 'break-words min-w-0' }, message),
  );
  const remove = () => {
    el.remove();
    if (!box.childElementCount && box.hidePopover && box.matches(':popover-open')) box.hidePopover();
  };
  el.addEventListener('click', remove);
  box.append(el);
  // Modal dialogs live in the browser's top layer; showing the container as a
  // popover again puts it above any dialog that is open.
  if (box.showPopover) {
    if (box.matches(':popover-open')) box.hidePopover();
    box.showPopover();
  }
  setTimeout(remove, kind === 'error' ? 8000 : 4000);
}

/** Toasts an error thrown by the API client (or anything else). */
export function toastError(err) {
  if (err && err.name === 'AbortError') return;
  // A lost session already sends the user to the login page.
  if (err && err.status === 401 && err.code !== 'invalid_credentials') return;
  toast((err && err.message) || t('error.unknown'), 'error');
}

// ---- dialogs --------------------------------------------------------------

/**
 * Opens a modal <dialog>. `content` is a node (usually a form). Returns
 * {dialog, close}. The dialog removes itself from the DOM when closed.
 * With `beforeClose` (a function resolving true to go ahead), Esc, the close
 * button and a click on the backdrop ask it first; `close()` never does.
 */
export function openModal({ title, content, testid, wide = false, onClose, beforeClose }) {
  const box = h(
    'div',
    { class: `modal-box ${wide ? 'max-w-3xl' : 'max-w-lg'}` },
    h(
      'form',
      { method: 'dialog' },
      h('button', { class: 'btn btn-sm btn-circle btn-ghost absolute right-3 top-3', 'aria-label': t('common.close'), testid: 'dialog-close' }, icon('x', 'h-4 w-4')),
    ),
    title ? h('h3', { class: 'text-lg font-semibold mb-4 pr-8' }, title) : null,
    content,
  );
  const dialog = h(
    'dialog',
    { class: 'modal modal-bottom sm:modal-middle', testid },
    box,
    h('form', { method: 'dialog', class: 'modal-backdrop' }, h('button', { tabindex: '-1' }, t('common.close'))),
  );
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (onClose) onClose();
  });
  if (beforeClose) {
    let asking = false;
    const ask = async (e) => {
      e.preventDefault();
      e.stopPropagation();
      if (asking) return;
      asking = true;
      try {
        if (await beforeClose()) dialog.close();
      } finally {
        asking = false;
      }
    };
    // Esc: stopped at its keydown (the browser then sends no close request), and at the
    // cancel event for browsers that send one anyway.
    dialog.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && e.target.closest('dialog') === dialog) ask(e);
    });
    dialog.addEventListener('cancel', ask);
    for (const f of dialog.querySelectorAll('form[method="dialog"]')) f.addEventListener('submit', ask);
  }
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close: () => dialog.open && dialog.close() };
}

/** Asks for confirmation; resolves true when the user confirms. */
export function confirmDialog({ title, message, confirmText, danger = true }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { type: 'button', class: `btn ${danger ? 'btn-error' : 'btn-primary'}`, testid: 'confirm-ok' }, confirmText || t('common.confirm'));
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost', testid: 'confirm-cancel' }, t('common.cancel'));
    const content = h('div', null, h('p', { class: 'break-words' }, message), h('div', { class: 'modal-action' }, cancel, ok));
    const m = openModal({ title, content, testid: 'confirm-dialog', onClose: () => resolve(answer) });
    ok.addEventListener('click', () => {
      answer = true;
      m.close();
    });
    cancel.addEventListener('click', () => m.close());
    setTimeout(() => cancel.focus(), 0);
  });
}

// ---- states ---------------------------------------------------------------

export function spinner(cls = 'loading-md') {
  return h('span', { class: `loading loading-spinner ${cls}`, 'aria-label': t('common.loading') });
}

export function loadingBlock(testid = 'loading') {
  return h('div', { class: 'flex items-center justify-center gap-3 py-12 text-base-content/60', testid }, spinner(), t('common.loading'));
}

export function emptyBlock(text, hint, iconName = 'inbox') {
  return h(
    'div',
    { class: 'flex flex-col items-center justify-center gap-2 py-12 text-center text-base-content/60', testid: 'empty-state' },
    icon(iconName, 'h-10 w-10 opacity-50'),
    h('p', { class: 'text-base font-medium text-base-content/80' }, text),
    hint ? h('p', { class: 'text-sm' }, hint) : null,
  );
}

export function errorBlock(err, retry) {
  return h(
    'div',
    { class: 'flex flex-col items-center justify-center gap-3 py-10 text-center', testid: 'error-state' },
    h('div', { class: 'text-error flex items-center gap-2 font-medium' }, icon('alert'), t('common.loadFailed')),
    h('p', { class: 'text-sm text-base-content/70 break-words max-w-lg' }, (err && err.message) || t('error.unknown')),
    retry ? h('button', { class: 'btn btn-sm', onclick: retry, testid: 'retry-button' }, icon('refresh', 'h-4 w-4'), t('common.retry')) : null,
  );
}

/** A table row spanning all columns, holding a state block. */
export function fullRow(colspan, child) {
  return h('tr', null, h('td', { colspan: String(colspan), class: 'p-0' }, child));
}

// ---- paging ---------------------------------------------------------------

/** Pager under a table: "1–20 of 135", page size, previous / next. */
export function pager({ page, pageSize, total, onChange, sizes = [10, 20, 50, 100] }) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const from = total === 0 ? 0 : (page - 1) * pageSize + 1;
  const to = Math.min(total, page * pageSize);
  const sizeSel = h(
    'select',
    {
      class: 'select select-sm w-auto',
      testid: 'pager-size',
      'aria-label': t('pager.pageSize'),
      onchange: (e) => onChange(1, Number(e.target.value)),
    },
    sizes.map((s) => h('option', { value: String(s), selected: s === pageSize }, t('pager.perPage', { n: s }))),
  );
  return h(
    'div',
    { class: 'flex flex-wrap items-center justify-between gap-3 px-4 py-3 border-t border-base-300 text-sm', testid: 'pager' },
    h('span', { class: 'text-base-content/70', testid: 'pager-info' }, t('pager.range', { from: fmtNum(from), to: fmtNum(to), total: fmtNum(total) })),
    h(
      'div',
      { class: 'flex items-center gap-2' },
      sizeSel,
      h(
        'div',
        { class: 'join' },
        h('button', { class: 'join-item btn btn-sm', disabled: page <= 1, testid: 'pager-prev', 'aria-label': t('pager.prev'), onclick: () => onChange(page - 1, pageSize) }, icon('chevronLeft', 'h-4 w-4')),
        h('span', { class: 'join-item btn btn-sm pointer-events-none', testid: 'pager-page' }, `${page} / ${pages}`),
        h('button', { class: 'join-item btn btn-sm', disabled: page >= pages, testid: 'pager-next', 'aria-label': t('pager.next'), onclick: () => onChange(page + 1, pageSize) }, icon('chevronRight', 'h-4 w-4')),
      ),
    ),
  );
}

// ---- misc -----------------------------------------------------------------

export function debounce(fn, ms = 300) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Copies text. The async clipboard API only exists on secure origins
 * (https or localhost); on a plain-http LAN address fall back to the
 * selection-based copy.
 */
export async function copyText(text, inputEl) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  const el = inputEl || h('textarea', { class: 'fixed -left-[9999px] top-0', readOnly: true, value: text });
  const temporary = !inputEl;
  if (temporary) document.body.append(el);
  el.focus();
  el.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  if (temporary) el.remove();
  return ok;
}

/** Sets a button into a busy state; returns a function that restores it. */
export function busy(btn) {
  const icons = Array.from(btn.querySelectorAll('svg'));
  const sp = spinner('loading-xs');
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  icons.forEach((i) => i.classList.add('hidden'));
  btn.prepend(sp);
  return () => {
    sp.remove();
    icons.forEach((i) => i.classList.remove('hidden'));
    btn.removeAttribute('aria-busy');
    btn.disabled = false;
  };
}

/** A labelled form field (daisyUI fieldset). */
export function field(label, control, hint) {
  return h(
    'fieldset',
    { class: 'fieldset' },
    h('legend', { class: 'fieldset-legend' }, label),
    control,
    hint ? h('p', { class: 'label whitespace-normal' }, hint) : null,
  );
}

/** Page heading with an optional subtitle and actions on the right. */
export function pageHeader(title, subtitle, ...actions) {
  return h(
    'div',
    { class: 'flex flex-wrap items-end justify-between gap-3 mb-6' },
    h('div', { class: 'min-w-0' }, h('h1', { class: 'text-2xl font-bold tracking-tight', testid: 'page-title' }, title), subtitle ? h('p', { class: 'text-sm text-base-content/60 mt-1' }, subtitle) : null),
    actions.length ? h('div', { class: 'flex flex-wrap items-center gap-2' }, actions) : null,
  );
}

/** Parses an optional non-negative integer input; '' -> null, bad -> NaN. */
export function optInt(value) {
  const s = String(value ?? '').trim();
  if (s === '') return null;
  if (!/^\d+$/.test(s)) return NaN;
  return Number(s);
}

/** Value for <input type="datetime-local"> from an RFC 3339 string (local time). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** RFC 3339 UTC string from a datetime-local value; '' -> null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
