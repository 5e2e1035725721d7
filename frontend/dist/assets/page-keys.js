// API keys: search, paging, create (the full key is shown once, with
// snippets for clients), enable / disable, edit limits and allowed models,
// delete. Each key shows its requests today and in the last minute against its
// limits, and links to its logs. Below 640 px the rows render as cards.

import { api, seg } from './api.js';
import { t, fmtNum, fmtCompact, fmtDateTime, fmtRelative } from './i18n.js';
import {
  h, icon, setChildren, pageHeader, pager, fullRow, loadingBlock, emptyBlock, errorBlock, toast, toastError,
  openModal, confirmDialog, debounce, copyText, busy, field, optInt, toLocalInput, fromLocalInput,
} from './ui.js';
import { replaceParams } from './router.js';

const COLS = 8;

export function mount(el, { params }) {
  const state = {
    q: params.get('q') || '',
    page: Math.max(1, Number(params.get('page')) || 1),
    pageSize: [10, 20, 50, 100].includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 20,
  };
  let disposed = false;
  let seq = 0;
  let served = null;

  /** The model ids the gateway serves (asked once per visit of the page). */
  function servedModels() {
    if (!served) {
      served = api.get('/models').then((r) => (r && Array.isArray(r.data) ? r.data.map((m) => String(m.id)) : []));
      served.catch(() => {
        served = null;
      });
    }
    return served;
  }

  const search = h('input', {
    type: 'search',
    class: 'grow',
    placeholder: t('keys.search'),
    value: state.q,
    testid: 'keys-search',
    'aria-label': t('keys.search'),
    oninput: debounce(() => {
      state.q = search.value.trim();
      state.page = 1;
      load();
    }, 300),
  });

  const tbody = h('tbody', { testid: 'keys-tbody', class: 'max-sm:block' });
  const footer = h('div');
  const table = h(
    'div',
    { class: 'overflow-x-auto' },
    h(
      'table',
      { class: 'table table-sm md:table-md max-sm:block', testid: 'keys-table' },
      h(
        'thead',
        { class: 'max-sm:hidden' },
        h('tr', null, [t('keys.col.name'), t('keys.col.key'), t('keys.col.enabled'), t('keys.col.usage'), t('keys.col.limits'), t('keys.col.models'), t('keys.col.expires'), ''].map((c, i) => h('th', { class: i === COLS - 1 ? 'text-right' : '' }, c))),
      ),
      tbody,
    ),
  );

  setChildren(
    el,
    pageHeader(t('nav.keys'), t('keys.subtitle'), h('button', { class: 'btn btn-primary', testid: 'keys-create-button', onclick: () => openForm(null) }, icon('plus'), t('keys.create'))),
    h(
      'div',
      { class: 'card bg-base-100 shadow-sm border border-base-300' },
      h('div', { class: 'flex flex-wrap items-center gap-3 p-4 border-b border-base-300' }, h('label', { class: 'input w-full sm:w-72' }, icon('search', 'h-4 w-4 opacity-50'), search)),
      table,
      footer,
    ),
  );

  function syncUrl() {
    replaceParams('keys', { q: state.q || undefined, page: state.page > 1 ? state.page : undefined, page_size: state.pageSize !== 20 ? state.pageSize : undefined });
  }

  async function load() {
    const my = ++seq;
    syncUrl();
    setChildren(tbody, fullRow(COLS, loadingBlock()));
    try {
      const res = await api.get('/api-keys', { page: state.page, page_size: state.pageSize, q: state.q });
      if (disposed || my !== seq) return;
      const rows = res.data || [];
      // The page may be past the end after deletions.
      if (!rows.length && res.total > 0 && state.page > 1) {
        state.page = Math.max(1, Math.ceil(res.total / state.pageSize));
        return load();
      }
      if (!rows.length) {
        setChildren(
          tbody,
          fullRow(COLS, state.q ? emptyBlock(t('keys.noMatch', { q: state.q }), null, 'search') : emptyBlock(t('keys.empty'), t('keys.emptyHint'), 'key')),
        );
      } else {
        setChildren(tbody, rows.map(row));
      }
      setChildren(footer, res.total ? pager({ page: state.page, pageSize: state.pageSize, total: res.total, onChange: (p, s) => { state.page = p; state.pageSize = s; load(); } }) : null);
    } catch (err) {
      if (disposed || my !== seq || err.status === 401) return;
      setChildren(tbody, fullRow(COLS, errorBlock(err, load)));
      setChildren(footer);
    }
  }

  /** "12 / 100" of a window against its limit, with a small bar when limited. */
  function counterLine(testid, label, used, limit) {
    const limited = limit !== null && limit !== undefined;
    const share = limited && limit > 0 ? used / limit : 0;
    return h(
      'div',
      { class: 'whitespace-nowrap', testid, dataset: { used: String(used), limit: limited ? String(limit) : '' } },
      h('span', { class: 'text-base-content/60' }, `${label} `),
      h('span', { class: `tabular-nums ${share >= 1 ? 'text-error font-medium' : ''}`, testid: `${testid}-text` }, `${fmtNum(used)} / ${limited ? fmtNum(limit) : '∞'}`),
      limited ? h('progress', { class: `progress block w-24 h-1.5 ${share >= 0.9 ? 'progress-error' : share >= 0.7 ? 'progress-warning' : 'progress-success'}`, value: String(Math.min(used, limit)), max: String(limit) }) : null,
    );
  }

  /** A cell; on phones (below 640 px) a labelled line of the row's card. */
  function cell(label, attrs, ...children) {
    return h(
      'td',
      { ...attrs, class: `${(attrs && attrs.class) || ''} max-sm:flex max-sm:items-start max-sm:justify-between max-sm:gap-3 max-sm:px-0 max-sm:py-1 max-sm:max-w-none` },
      label ? h('span', { class: 'sm:hidden text-xs text-base-content/60 shrink-0 pt-0.5' }, label) : null,
      h('div', { class: 'min-w-0 max-sm:text-right' }, children),
    );
  }

  function row(k) {
    const expired = k.expires_at && new Date(k.expires_at).getTime() < Date.now();
    const toggle = h('input', {
      type: 'checkbox',
      class: 'toggle toggle-sm toggle-success',
      checked: !!k.is_active,
      testid: 'key-toggle',
      'aria-label': t('keys.toggle'),
      onchange: async () => {
        const want = toggle.checked;
        toggle.disabled = true;
        try {
          const updated = await api.patch(`/api-keys/${seg(k.id)}`, { is_active: want });
          k.is_active = updated && typeof updated.is_active === 'boolean' ? updated.is_active : want;
          toggle.checked = k.is_active;
          tr.dataset.active = String(k.is_active);
          toast(t(k.is_active ? 'keys.enabled' : 'keys.disabled', { name: k.name }));
        } catch (err) {
          toggle.checked = !want;
          toastError(err);
        } finally {
          toggle.disabled = false;
          toggleCard.checked = toggle.checked;
        }
      },
    });

    // On phones the card shows the switch beside the name (the table's column is hidden).
    const toggleCard = h('input', {
      type: 'checkbox',
      class: 'toggle toggle-sm toggle-success',
      checked: !!k.is_active,
      testid: 'key-toggle-card',
      'aria-label': t('keys.toggle'),
      onchange: () => {
        toggle.checked = toggleCard.checked;
        toggle.dispatchEvent(new Event('change'));
      },
    });
    toggle.addEventListener('change', () => {
      toggleCard.checked = toggle.checked;
    });
    const models = Array.isArray(k.allowed_models) && k.allowed_models.length ? k.allowed_models : null;
    const tokenBar = k.total_token_limit
      ? h('progress', { class: `progress w-24 ${k.tokens_used / k.total_token_limit >= 0.9 ? 'progress-error' : 'progress-primary'}`, value: String(Math.min(k.tokens_used || 0, k.total_token_limit)), max: String(k.total_token_limit) })
      : null;

    const tr = h(
      'tr',
      { class: 'hover:bg-base-200/50 max-sm:block max-sm:border max-sm:border-base-300 max-sm:rounded-box max-sm:m-3 max-sm:p-3 max-sm:bg-base-100', testid: 'key-row', dataset: { id: String(k.id), name: String(k.name ?? ''), active: String(!!k.is_active) } },
      h('td', { class: 'max-w-48 max-sm:block max-sm:max-w-none max-sm:px-0 max-sm:pt-0' }, h('div', { class: 'flex items-center justify-between gap-2' }, h('div', { class: 'font-medium truncate', title: k.name, testid: 'key-name' }, k.name), h('span', { class: 'sm:hidden' }, toggleCard)), h('div', { class: 'text-xs text-base-content/60 whitespace-nowrap' }, t('keys.created', { when: fmtDateTime(k.created_at) }))),
      cell(t('keys.col.key'), null, h('code', { class: 'text-xs font-mono bg-base-200 rounded px-1.5 py-0.5 whitespace-nowrap', testid: 'key-masked' }, k.masked_key || '—')),
      h('td', { class: 'max-sm:hidden' }, toggle),
      cell(
        t('keys.col.usage'),
        { class: 'text-sm' },
        h('div', { class: 'whitespace-nowrap' }, t('keys.requests', { n: fmtNum(k.usage_count || 0), count: k.usage_count || 0 })),
        h('div', { class: 'text-xs text-base-content/60 whitespace-nowrap' }, t('keys.tokensUsed', { used: fmtCompact(k.tokens_used || 0), limit: k.total_token_limit ? fmtCompact(k.total_token_limit) : '∞' })),
        tokenBar,
        h('div', { class: 'text-xs text-base-content/60 whitespace-nowrap' }, k.last_used_at ? t('keys.lastUsed', { rel: fmtRelative(k.last_used_at) }) : t('keys.neverUsed')),
      ),
      cell(
        t('keys.col.limits'),
        { class: 'text-xs' },
        counterLine('key-today', t('keys.today'), k.requests_today || 0, k.daily_request_limit),
        counterLine('key-minute', t('keys.lastMinute'), k.requests_last_minute || 0, k.rpm_limit),
      ),
      cell(
        t('keys.col.models'),
        { class: 'max-w-48' },
        models
          ? h('div', { class: 'flex flex-wrap gap-1' }, models.slice(0, 3).map((m) => h('span', { class: 'badge badge-sm badge-outline max-w-40 truncate', title: m }, m)), models.length > 3 ? h('span', { class: 'badge badge-sm badge-ghost', title: models.join(', ') }, `+${models.length - 3}`) : null)
          : h('span', { class: 'text-sm text-base-content/60' }, t('keys.allModels')),
      ),
      cell(
        t('keys.col.expires'),
        { class: 'whitespace-nowrap text-sm' },
        !k.expires_at ? h('span', { class: 'text-base-content/60' }, t('keys.never')) : expired ? h('span', { class: 'badge badge-sm badge-error' }, t('keys.expired')) : h('span', { title: fmtDateTime(k.expires_at) }, fmtRelative(k.expires_at)),
      ),
      h(
        'td',
        { class: 'text-right whitespace-nowrap max-sm:block max-sm:px-0 max-sm:pb-0 max-sm:pt-2 max-sm:border-t max-sm:border-base-300 max-sm:mt-2' },
        h('a', { class: 'btn btn-ghost btn-sm btn-square', href: `#/logs?api_key_id=${seg(k.id)}`, title: t('keys.logs'), 'aria-label': t('keys.logs'), testid: 'key-logs' }, icon('logs', 'h-4 w-4')),
        h('button', { class: 'btn btn-ghost btn-sm btn-square', title: t('common.edit'), 'aria-label': t('common.edit'), testid: 'key-edit', onclick: () => openForm(k) }, icon('edit', 'h-4 w-4')),
        h('button', { class: 'btn btn-ghost btn-sm btn-square text-error', title: t('common.delete'), 'aria-label': t('common.delete'), testid: 'key-delete', onclick: () => remove(k) }, icon('trash', 'h-4 w-4')),
      ),
    );
    return tr;
  }

  async function remove(k) {
    const ok = await confirmDialog({ title: t('keys.deleteTitle'), message: t('keys.deleteText', { name: k.name }), confirmText: t('common.delete') });
    if (!ok) return;
    try {
      await api.del(`/api-keys/${seg(k.id)}`);
      toast(t('keys.deleted', { name: k.name }));
      load();
    } catch (err) {
      toastError(err);
      if (err.status === 404) load();
    }
  }

  /** Create (k = null) or edit dialog. */
  function openForm(k) {
    const editing = !!k;
    const input = (testid, attrs) => h('input', { class: 'input w-full', testid, ...attrs });
    const name = input('key-form-name', { value: k ? k.name : '', required: true, maxlength: '100', placeholder: t('keys.form.namePlaceholder') });
    const rpm = input('key-form-rpm', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: k && k.rpm_limit != null ? String(k.rpm_limit) : '', placeholder: t('keys.form.unlimited') });
    const daily = input('key-form-daily', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: k && k.daily_request_limit != null ? String(k.daily_request_limit) : '', placeholder: t('keys.form.unlimited') });
    const tokens = input('key-form-tokens', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: k && k.total_token_limit != null ? String(k.total_token_limit) : '', placeholder: t('keys.form.unlimited') });
    const expires = input('key-form-expires', { type: 'datetime-local', value: k ? toLocalInput(k.expires_at) : '' });
    // Allowed models: picked from the served ones, or typed (a name the gateway does not
    // serve is taken, with a warning).
    const current = k && Array.isArray(k.allowed_models) ? k.allowed_models : [];
    const picker = h('div', { class: 'flex flex-wrap gap-2', testid: 'key-form-model-options' }, h('span', { class: 'text-sm text-base-content/60' }, t('common.loading')));
    const models = input('key-form-models', { placeholder: t('keys.form.modelsOther'), oninput: () => warnUnknown() });
    const modelWarning = h('div', { role: 'status', class: 'alert alert-warning alert-soft hidden text-sm', testid: 'key-form-models-warning' });
    let offered = [];
    const picked = () => Array.from(picker.querySelectorAll('input[type="checkbox"]:checked')).map((c) => c.value);
    const typed = () => models.value.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean);
    function warnUnknown() {
      const unknown = offered.length ? typed().filter((m) => !offered.includes(m)) : [];
      modelWarning.classList.toggle('hidden', !unknown.length);
      modelWarning.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, t('keys.form.modelsUnknown', { models: unknown.join(', ') })));
    }
    servedModels().then(
      (ids) => {
        offered = ids;
        setChildren(
          picker,
          ids.map((id) => h('label', { class: 'label cursor-pointer gap-2 rounded-box border border-base-300 px-3 py-1.5 text-sm', testid: 'key-form-model-option', dataset: { model: id } }, h('input', { type: 'checkbox', class: 'checkbox checkbox-sm', value: id, checked: current.includes(id) }), h('span', { class: 'font-mono' }, id))),
        );
        models.value = current.filter((m) => !ids.includes(m)).join(', ');
        warnUnknown();
      },
      () => {
        setChildren(picker);
        models.value = current.join(', ');
      },
    );
    const errorBox = h('div', { role: 'alert', class: 'alert alert-error alert-soft hidden text-sm', testid: 'key-form-error' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'key-form-submit' }, editing ? t('common.save') : t('keys.create'));
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost', testid: 'key-form-cancel', onclick: () => m.close() }, t('common.cancel'));

    const showError = (msg) => {
      errorBox.replaceChildren(icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, msg));
      errorBox.classList.remove('hidden');
    };

    const form = h(
      'form',
      {
        testid: 'key-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          errorBox.classList.add('hidden');
          const body = {
            name: name.value.trim(),
            rpm_limit: optInt(rpm.value),
            daily_request_limit: optInt(daily.value),
            total_token_limit: optInt(tokens.value),
            expires_at: fromLocalInput(expires.value),
            allowed_models: [...new Set([...picked(), ...typed()])],
          };
          if (!body.name) return showError(t('keys.form.nameRequired'));
          for (const [key, label] of [['rpm_limit', 'keys.form.rpm'], ['daily_request_limit', 'keys.form.daily'], ['total_token_limit', 'keys.form.tokens']]) {
            if (Number.isNaN(body[key]) || body[key] === 0) return showError(t('keys.form.badNumber', { field: t(label) }));
          }
          if (!body.allowed_models.length) body.allowed_models = null;
          if (!editing) {
            // Only send what was filled in; absent means unlimited.
            for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
          }
          const done = busy(submit);
          try {
            if (editing) {
              await api.patch(`/api-keys/${seg(k.id)}`, body);
              toast(t('keys.saved', { name: body.name }));
              m.close();
            } else {
              const created = await api.post('/api-keys', body);
              m.close();
              showNewKey(created);
            }
            load();
          } catch (err) {
            done();
            if (err.status !== 401) showError(err.message);
          }
        },
      },
      errorBox,
      field(t('keys.form.name'), name),
      h('div', { class: 'grid grid-cols-1 gap-x-4 sm:grid-cols-3' }, field(t('keys.form.rpm'), rpm), field(t('keys.form.daily'), daily), field(t('keys.form.tokens'), tokens)),
      field(t('keys.form.expires'), expires, t('keys.form.expiresHint')),
      field(t('keys.form.models'), h('div', { class: 'flex flex-col gap-2' }, picker, models, modelWarning), t('keys.form.modelsHint')),
      h('div', { class: 'modal-action' }, cancel, submit),
    );
    const m = openModal({ title: editing ? t('keys.editTitle', { name: k.name }) : t('keys.createTitle'), content: form, testid: 'key-dialog' });
    setTimeout(() => name.focus(), 0);
  }

  /**
   * Shows a freshly created key, never retrievable again, with ready-to-paste
   * snippets for clients. Closing it other than by "I have saved it" asks first.
   */
  function showNewKey(created) {
    const value = created && created.key ? String(created.key) : '';
    const copyButton = (testid, text, label, okMessage) => {
      const btn = h(
        'button',
        {
          type: 'button',
          class: 'btn btn-sm',
          testid,
          onclick: async () => {
            const ok = await copyText(text);
            toast(ok ? okMessage : t('keys.copyFailed'), ok ? 'success' : 'warning');
            if (ok) btn.replaceChildren(icon('check', 'h-4 w-4'), t('keys.copiedShort'));
          },
        },
        icon('copy', 'h-4 w-4'),
        label,
      );
      return btn;
    };
    const code = h('code', { class: 'block flex-1 min-w-0 break-all font-mono text-sm select-all', testid: 'new-key-value' }, value);
    const copyBtn = copyButton('new-key-copy', value, t('keys.copy'), t('keys.copied'));
    copyBtn.classList.add('btn-primary');

    const base = `${window.location.origin}/v1`;
    const model = created && Array.isArray(created.allowed_models) && created.allowed_models.length ? created.allowed_models[0] : null;
    const snippet = (id, title, text, note) =>
      h(
        'div',
        { class: 'flex flex-col gap-1', testid: `snippet-${id}` },
        h('div', { class: 'flex items-center justify-between gap-2' }, h('span', { class: 'text-sm font-medium' }, title), copyButton(`snippet-copy-${id}`, text, t('keys.copy'), t('keys.snippetCopied', { what: title }))),
        h('pre', { class: 'rounded-box bg-base-200 p-3 text-xs font-mono overflow-x-auto whitespace-pre', testid: `snippet-text-${id}` }, text),
        note ? h('p', { class: 'text-xs text-base-content/60', testid: `snippet-note-${id}` }, note) : null,
      );
    const body = (m) => JSON.stringify({ model: m, messages: [{ role: 'user', content: 'Hello' }] });
    const chatModel = model || 'gpt-5';
    const codexModel = model || 'gpt-5-codex';
    const snippets = [
      snippet('base-url', t('keys.snippet.baseUrl'), base),
      snippet('curl', 'curl', [`curl ${base}/chat/completions \\`, `  -H "Authorization: Bearer ${value}" \\`, '  -H "Content-Type: application/json" \\', `  -d '${body(chatModel)}'`].join('\n')),
      snippet(
        'python',
        'Python (openai)',
        ['from openai import OpenAI', '', `client = OpenAI(base_url="${base}", api_key="${value}")`, 'reply = client.chat.completions.create(', `    model="${chatModel}",`, '    messages=[{"role": "user", "content": "Hello"}],', ')', 'print(reply.choices[0].message.content)'].join('\n'),
      ),
      snippet(
        'codex',
        t('keys.snippet.codex'),
        [
          '# ~/.codex/config.toml',
          `model = "${codexModel}"`,
          'model_provider = "gpt2api"',
          '',
          '[model_providers.gpt2api]',
          'name = "gpt2api"',
          `base_url = "${base}"`,
          'env_key = "GPT2API_KEY"',
          'wire_api = "responses"',
          '# supports_websockets = true',
          '',
          '# in your shell:',
          `# export GPT2API_KEY="${value}"`,
        ].join('\n'),
        t('keys.snippet.codexNote'),
      ),
    ];

    const content = h(
      'div',
      { class: 'flex flex-col gap-4' },
      h('div', { role: 'alert', class: 'alert alert-warning text-sm', testid: 'new-key-warning' }, icon('alert'), h('span', null, t('keys.onceWarning'))),
      h('div', { class: 'flex flex-col gap-2' }, h('span', { class: 'text-sm font-medium' }, created && created.name ? created.name : ''), h('div', { class: 'flex items-center gap-2 rounded-box bg-base-200 p-3' }, code, copyBtn)),
      h('div', { class: 'flex flex-col gap-3', testid: 'new-key-snippets' }, h('h4', { class: 'font-semibold text-sm' }, t('keys.snippet.title')), snippets),
      h('div', { class: 'modal-action mt-0' }, h('button', { type: 'button', class: 'btn', testid: 'new-key-done', onclick: () => m.close() }, t('keys.saved_it'))),
    );
    const m = openModal({
      title: t('keys.newTitle'),
      content,
      testid: 'new-key-dialog',
      wide: true,
      beforeClose: () => confirmDialog({ title: t('keys.closeTitle'), message: t('keys.closeText'), confirmText: t('keys.closeConfirm') }),
    });
  }

  load();
  if (params.get('create') === '1') {
    openForm(null);
  }

  return () => {
    disposed = true;
  };
}
