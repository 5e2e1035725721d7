// Dashboard: a first-run checklist until the gateway has served a request,
// stat cards, a live status panel refreshed every 10 s, quick actions, and
// usage charts for 24h / 7d / 30d.

import { api } from './api.js';
import { t, fmtNum, fmtCompact, fmtPercent, fmtDuration, fmtTime, fmtDay, fmtRelative } from './i18n.js';
import { h, icon, setChildren, pageHeader, loadingBlock, errorBlock, emptyBlock, busy, field } from './ui.js';
import { replaceParams } from './router.js';
import { loadChart, applyChartTheme, themeColor, palette } from './charts.js';
import { ATTENTION_STATUSES, statusBadge, tokenReason, tokenTitle } from './status.js';

const LIVE_INTERVAL_MS = 10_000;
const LIVE_WINDOW_MIN = 5;
const RANGES = ['24h', '7d', '30d'];

// The first-run test call's answer (and whether the checklist was hidden), kept
// across re-renders of the page (a language switch) for the rest of the visit.
const firstRunState = { answer: null, dismissed: false };

export function mount(el, { params }) {
  let range = RANGES.includes(params.get('range')) ? params.get('range') : '24h';
  let disposed = false;
  let timer = null;
  let lastLive = 0;
  let usage = null;
  const charts = [];

  // ---- skeleton -----------------------------------------------------------
  const subtitle = h('span', { testid: 'dashboard-subtitle' }, t('dashboard.subtitle'));
  const cards = h('div', { class: 'grid grid-cols-1 gap-4 sm:grid-cols-2 xl:grid-cols-4', testid: 'stat-cards' }, loadingBlock());
  const liveBody = h('div', { class: 'min-h-40' }, loadingBlock());
  const liveStamp = h('span', { class: 'text-xs text-base-content/50', testid: 'live-updated' }, '');
  const refreshBtn = h('button', { class: 'btn btn-ghost btn-xs', testid: 'live-refresh', title: t('common.refresh'), 'aria-label': t('common.refresh'), onclick: () => refreshLive() }, icon('refresh', 'h-3.5 w-3.5'));

  const live = h(
    'section',
    { class: 'card bg-base-100 shadow-sm border border-base-300 lg:col-span-2', testid: 'live-panel' },
    h(
      'div',
      { class: 'card-body gap-4' },
      h(
        'div',
        { class: 'flex flex-wrap items-center justify-between gap-2' },
        h('h2', { class: 'card-title text-base whitespace-nowrap' }, h('span', { class: 'inline-grid *:[grid-area:1/1]' }, h('span', { class: 'status status-success animate-ping' }), h('span', { class: 'status status-success' })), t('dashboard.live')),
        h('div', { class: 'flex items-center gap-1' }, liveStamp, refreshBtn),
      ),
      liveBody,
    ),
  );

  const quick = h(
    'section',
    { class: 'card bg-base-100 shadow-sm border border-base-300', testid: 'quick-actions' },
    h(
      'div',
      { class: 'card-body gap-3' },
      h('h2', { class: 'card-title text-base' }, t('dashboard.quickActions')),
      h('a', { href: '#/keys?create=1', class: 'btn btn-primary justify-start', testid: 'quick-create-key' }, icon('plus'), t('dashboard.createKey')),
      h('a', { href: '#/tokens?import=1', class: 'btn btn-outline justify-start', testid: 'quick-import' }, icon('upload'), t('dashboard.importAccounts')),
      h('a', { href: '#/logs?status=error', class: 'btn btn-ghost justify-start', testid: 'quick-errors' }, icon('alert'), t('dashboard.viewErrors')),
    ),
  );

  const rangeButtons = RANGES.map((r) =>
    h('button', { type: 'button', class: 'join-item btn btn-sm', testid: `range-${r}`, dataset: { range: r }, onclick: () => setRange(r) }, t(`range.${r}`)),
  );
  const chartArea = h('div', { class: 'grid grid-cols-1 gap-4 xl:grid-cols-2', testid: 'charts' }, loadingBlock());
  const firstRun = firstRunChecklist();

  setChildren(
    el,
    pageHeader(t('nav.dashboard'), subtitle),
    firstRun.el,
    cards,
    h('div', { class: 'mt-4 grid grid-cols-1 gap-4 lg:grid-cols-3' }, live, quick),
    h(
      'div',
      { class: 'mt-8 mb-4 flex flex-wrap items-center justify-between gap-3' },
      h('h2', { class: 'text-lg font-semibold' }, t('dashboard.usage')),
      h('div', { class: 'join', role: 'group', 'aria-label': t('dashboard.range'), testid: 'range-switch' }, rangeButtons),
    ),
    chartArea,
  );

  // ---- stat cards ---------------------------------------------------------
  function card(testid, ic, title, value, desc, tone = 'text-primary') {
    return h(
      'div',
      { class: 'card bg-base-100 shadow-sm border border-base-300', testid },
      h(
        'div',
        { class: 'card-body gap-1 p-5' },
        h('div', { class: 'flex items-center justify-between text-sm text-base-content/60' }, h('span', null, title), h('span', { class: tone }, icon(ic))),
        h('div', { class: 'text-3xl font-bold tabular-nums', testid: `${testid}-value` }, value),
        h('div', { class: 'text-xs text-base-content/60 flex flex-wrap gap-x-2 gap-y-1 items-center' }, desc),
      ),
    );
  }

  function renderCards(o) {
    const k = o.api_keys || {};
    const tk = o.tokens || {};
    const rq = o.requests || {};
    const us = o.usage || {};
    const errRate = rq.last_24h ? rq.errors_24h / rq.last_24h : null;
    const tokens24 = (us.input_tokens_24h || 0) + (us.output_tokens_24h || 0);
    const mini = (n, key, cls) => (n ? h('span', { class: `badge badge-xs ${cls}` }, `${t(key)} ${fmtNum(n)}`) : null);
    setChildren(
      cards,
      card('stat-keys', 'key', t('stats.apiKeys'), fmtNum(k.total), t('stats.activeOf', { active: fmtNum(k.active), total: fmtNum(k.total) })),
      card('stat-accounts', 'users', t('stats.accounts'), `${fmtNum(tk.active)} / ${fmtNum(tk.total)}`, [
        h('span', null, t('stats.accountsActive')),
        mini(tk.cooling_down, 'status.cooling_down', 'badge-info'),
        mini(tk.expired, 'status.expired', 'badge-error'),
        mini(tk.needs_relogin, 'status.needs_relogin', 'badge-error'),
        mini(tk.disabled, 'status.disabled', 'badge-ghost'),
      ], 'text-success'),
      card(
        'stat-requests',
        'activity',
        t('stats.requests24h'),
        fmtNum(rq.last_24h),
        [
          h('span', { class: rq.errors_24h ? 'text-error font-medium' : '', testid: 'stat-errors-value' }, t('stats.errors', { n: fmtNum(rq.errors_24h || 0), count: rq.errors_24h || 0 })),
          errRate !== null ? h('span', null, `(${fmtPercent(errRate)})`) : null,
          h('span', null, '·'),
          h('span', null, t('stats.allTime', { n: fmtNum(rq.total) })),
        ],
        'text-info',
      ),
      card('stat-tokens', 'hash', t('stats.tokens24h'), fmtCompact(tokens24), t('stats.inOut', { input: fmtCompact(us.input_tokens_24h || 0), output: fmtCompact(us.output_tokens_24h || 0) }), 'text-secondary'),
    );
    const parts = [];
    if (o.version) parts.push(`v${o.version}`);
    if (o.uptime_seconds !== undefined && o.uptime_seconds !== null) parts.push(t('dashboard.uptime', { d: fmtDuration(o.uptime_seconds) }));
    subtitle.textContent = parts.length ? `${t('dashboard.subtitle')} · ${parts.join(' · ')}` : t('dashboard.subtitle');
  }

  // ---- live panel ---------------------------------------------------------
  async function fetchAttention() {
    const answers = await Promise.all(ATTENTION_STATUSES.map((s) => api.get('/tokens', { status: s, page: 1, page_size: 5 })));
    const items = [];
    let total = 0;
    for (const r of answers) {
      total += r.total || 0;
      for (const tok of r.data || []) items.push(tok);
    }
    return { items: items.slice(0, 6), total };
  }

  async function refreshLive() {
    if (disposed) return;
    const since = new Date(Date.now() - LIVE_WINDOW_MIN * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      // The overview is required; the other parts degrade to "—" on their own.
      const [overview, ...rest] = await Promise.all([
        api.get('/stats/overview'),
        ...[
          api.get('/logs', { since, page: 1, page_size: 1 }),
          api.get('/logs', { since, status: 'error', page: 1, page_size: 1 }),
          fetchAttention(),
        ].map((p) => p.then((value) => ({ value }), (error) => ({ error }))),
      ]);
      if (disposed) return;
      const [recent, recentErr, attention] = rest;
      renderCards(overview);
      firstRun.update(overview);
      renderLive(
        overview,
        recent.value ? recent.value.total || 0 : null,
        recentErr.value ? recentErr.value.total || 0 : null,
        attention.value || null,
      );
      lastLive = Date.now();
      stamp();
    } catch (err) {
      if (disposed || err.status === 401) return;
      if (!lastLive) {
        setChildren(cards, h('div', { class: 'sm:col-span-2 xl:col-span-4 card bg-base-100 border border-base-300' }, errorBlock(err, refreshLive)));
        setChildren(liveBody, errorBlock(err, refreshLive));
      } else {
        liveStamp.textContent = t('dashboard.liveFailed');
        liveStamp.className = 'text-xs text-error';
      }
    }
  }

  function stamp() {
    if (!lastLive) return;
    liveStamp.className = 'text-xs text-base-content/50';
    liveStamp.textContent = t('dashboard.updated', { rel: fmtRelative(lastLive) });
  }

  function metric(testid, label, value, sub, tone = '') {
    return h(
      'div',
      { class: 'rounded-box bg-base-200 p-4', testid },
      h('div', { class: 'text-xs text-base-content/60' }, label),
      h('div', { class: `text-2xl font-bold tabular-nums ${tone}`, testid: `${testid}-value` }, value),
      sub ? h('div', { class: 'text-xs text-base-content/60' }, sub) : null,
    );
  }

  function renderLive(o, reqs, errs, attention) {
    const tk = o.tokens || {};
    const availability = tk.total ? tk.active / tk.total : 0;
    const attentionList = !attention
      ? h('div', { class: 'py-2 text-sm text-base-content/60' }, t('common.loadFailed'))
      : attention.items.length
      ? h(
          'ul',
          { class: 'divide-y divide-base-300', testid: 'attention-list' },
          attention.items.map((tok) =>
            h(
              'li',
              { class: 'flex flex-wrap items-center gap-x-3 gap-y-1 py-2', testid: 'attention-item', dataset: { id: String(tok.id), status: String(tok.status) } },
              statusBadge(tok.status),
              h('span', { class: 'font-medium truncate max-w-[16rem]', title: tokenTitle(tok) }, tokenTitle(tok)),
              h('span', { class: 'text-sm text-base-content/60 break-words basis-full min-w-0 line-clamp-2', testid: 'attention-reason' }, tokenReason(tok)),
            ),
          ),
        )
      : !tk.total
      ? h('div', { class: 'flex items-center gap-2 py-2 text-sm text-base-content/70', testid: 'attention-empty' }, icon('info', 'h-4 w-4'), t('dashboard.noAccounts'))
      : h('div', { class: 'flex items-center gap-2 py-2 text-sm text-success', testid: 'attention-none' }, icon('checkCircle', 'h-4 w-4'), t('dashboard.allHealthy'));
    setChildren(
      liveBody,
      h(
        'div',
        { class: 'grid grid-cols-2 gap-3 md:grid-cols-3' },
        metric('live-requests', t('dashboard.recentRequests', { n: LIVE_WINDOW_MIN }), fmtNum(reqs)),
        metric('live-errors', t('dashboard.recentErrors', { n: LIVE_WINDOW_MIN }), fmtNum(errs), null, errs ? 'text-error' : ''),
        h(
          'div',
          { class: 'rounded-box bg-base-200 p-4 col-span-2 md:col-span-1', testid: 'live-available' },
          h('div', { class: 'text-xs text-base-content/60' }, t('dashboard.available')),
          h('div', { class: 'text-2xl font-bold tabular-nums', testid: 'live-available-value' }, `${fmtNum(tk.active)} / ${fmtNum(tk.total)}`),
          h('progress', { class: `progress ${availability >= 0.5 ? 'progress-success' : 'progress-warning'} w-full`, value: String(Math.round(availability * 100)), max: '100' }),
        ),
      ),
      h(
        'div',
        { class: 'mt-2' },
        h(
          'div',
          { class: 'flex items-center justify-between text-sm font-medium' },
          h('span', null, t('dashboard.attention'), attention && attention.total ? h('span', { class: 'badge badge-error badge-sm ml-2', testid: 'attention-count' }, fmtNum(attention.total)) : null),
          attention && attention.total ? h('a', { href: '#/tokens', class: 'link link-primary text-xs' }, t('common.viewAll')) : null,
        ),
        attentionList,
      ),
    );
  }

  // ---- first run ----------------------------------------------------------
  // Shown while the gateway has no account, no key or no request yet: add an
  // account, create a key, then a test call from here (POST /admin/playground)
  // whose answer shows below. Each step is ticked from the overview's counts.
  function firstRunChecklist() {
    const root = h('section', { class: 'card bg-base-100 shadow-sm border border-primary/40 mb-4 hidden', testid: 'first-run' });
    let built = false;
    const steps = {};
    const keySelect = h('select', { class: 'select w-full', testid: 'first-run-key' });
    const modelSelect = h('select', { class: 'select w-full', testid: 'first-run-model' });
    const prompt = h('input', { class: 'input w-full', testid: 'first-run-prompt', value: t('dashboard.firstRun.callDefault'), maxlength: '4000' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'first-run-send' }, icon('zap', 'h-4 w-4'), t('dashboard.firstRun.send'));
    const result = h('div', { testid: 'first-run-result' });
    const callForm = h(
      'form',
      {
        class: 'flex flex-col gap-2',
        testid: 'first-run-call-form',
        onsubmit: async (e) => {
          e.preventDefault();
          const done = busy(send);
          setChildren(result);
          try {
            const r = await api.post('/playground', { api_key_id: Number(keySelect.value), model: modelSelect.value, prompt: prompt.value });
            firstRunState.answer = r;
            showAnswer(r);
          } catch (err) {
            if (err.status === 401) return;
            setChildren(result, h('div', { role: 'alert', class: 'alert alert-error alert-soft text-sm', testid: 'first-run-error', dataset: { code: err.code || '' } }, icon('alert', 'h-4 w-4'), h('span', { class: 'break-words min-w-0' }, err.message)));
          } finally {
            done();
          }
        },
      },
      h('div', { class: 'grid grid-cols-1 gap-x-3 sm:grid-cols-2' }, field(t('dashboard.firstRun.callKey'), keySelect), field(t('dashboard.firstRun.callModel'), modelSelect)),
      field(t('dashboard.firstRun.callPrompt'), prompt),
      h('div', null, send),
      result,
    );
    function showAnswer(r) {
      const usage = r.usage || {};
      setChildren(
        result,
        h(
          'div',
          { class: 'rounded-box bg-base-200 p-3 flex flex-col gap-1', testid: 'first-run-answer' },
          h('div', { class: 'text-xs text-base-content/60' }, t('dashboard.firstRun.answer')),
          h('p', { class: 'whitespace-pre-wrap break-words', testid: 'first-run-answer-text' }, r.answer || '—'),
          h('div', { class: 'text-xs text-base-content/60' }, t('dashboard.firstRun.answerMeta', { model: r.model, tokens: fmtNum(usage.total_tokens || 0), ms: fmtNum(r.latency_ms || 0) })),
        ),
      );
      tick('call', true);
      showAllDone();
    }

    const needs = h('p', { class: 'text-sm text-base-content/60', testid: 'first-run-needs' }, t('dashboard.firstRun.needsSteps'));
    const allDone = h('div', { class: 'hidden alert alert-success alert-soft text-sm', testid: 'first-run-all-done' });

    function step(name, title, hint, ...body) {
      const mark = h('span', { class: 'grid place-items-center h-7 w-7 shrink-0 rounded-full border-2 border-base-300 text-base-content/40', testid: `first-run-mark-${name}` }, icon('check', 'h-4 w-4'));
      const li = h('li', { class: 'flex gap-3', testid: `first-run-step-${name}`, dataset: { done: 'false' } }, mark, h('div', { class: 'flex flex-col gap-2 min-w-0 flex-1' }, h('div', null, h('div', { class: 'font-medium' }, title), h('div', { class: 'text-sm text-base-content/60' }, hint)), body));
      steps[name] = { li, mark };
      return li;
    }

    function tick(name, done) {
      const s = steps[name];
      s.li.dataset.done = String(done);
      s.mark.className = `grid place-items-center h-7 w-7 shrink-0 rounded-full border-2 ${done ? 'border-success bg-success text-success-content' : 'border-base-300 text-base-content/40'}`;
      s.mark.setAttribute('aria-label', done ? t('dashboard.firstRun.done') : '');
    }

    function showAllDone() {
      allDone.classList.remove('hidden');
      allDone.replaceChildren(icon('checkCircle', 'h-4 w-4'), h('span', null, t('dashboard.firstRun.allDone', { url: `${window.location.origin}/v1` })), h('button', {
          type: 'button',
          class: 'btn btn-sm btn-ghost',
          testid: 'first-run-dismiss',
          onclick: () => {
            firstRunState.dismissed = true;
            root.classList.add('hidden');
          },
        }, t('dashboard.firstRun.dismiss')));
    }

    function build() {
      built = true;
      setChildren(
        root,
        h(
          'div',
          { class: 'card-body gap-4' },
          h('div', null, h('h2', { class: 'card-title text-base' }, icon('zap', 'h-5 w-5 text-primary'), t('dashboard.firstRun.title')), h('p', { class: 'text-sm text-base-content/60' }, t('dashboard.firstRun.subtitle'))),
          h(
            'ol',
            { class: 'flex flex-col gap-4' },
            step('account', t('dashboard.firstRun.account'), t('dashboard.firstRun.accountHint'), h('div', { class: 'flex flex-wrap gap-2' }, h('a', { href: '#/tokens?import=1', class: 'btn btn-sm btn-outline', testid: 'first-run-import' }, icon('upload', 'h-4 w-4'), t('dashboard.firstRun.import')), h('a', { href: '#/tokens?signin=1', class: 'btn btn-sm btn-outline', testid: 'first-run-signin' }, icon('users', 'h-4 w-4'), t('dashboard.firstRun.signIn')))),
            step('key', t('dashboard.firstRun.key'), t('dashboard.firstRun.keyHint'), h('div', null, h('a', { href: '#/keys?create=1', class: 'btn btn-sm btn-outline', testid: 'first-run-create-key' }, icon('plus', 'h-4 w-4'), t('dashboard.createKey')))),
            step('call', t('dashboard.firstRun.call'), t('dashboard.firstRun.callHint'), needs, callForm),
          ),
          allDone,
        ),
      );
    }

    async function fillChoices() {
      const [keys, models] = await Promise.all([api.get('/api-keys', { page: 1, page_size: 100 }), api.get('/models')]);
      if (disposed) return;
      const active = (keys.data || []).filter((k) => k.is_active);
      const keep = keySelect.value;
      setChildren(keySelect, active.map((k) => h('option', { value: String(k.id), selected: String(k.id) === keep }, `${k.name} (${k.masked_key})`)));
      const ids = (models.data || []).map((m) => String(m.id));
      const keepModel = modelSelect.value;
      setChildren(modelSelect, ids.map((id) => h('option', { value: id, selected: id === keepModel }, id)));
    }

    async function update(o) {
      const accounts = (o.tokens && o.tokens.total) || 0;
      const keys = (o.api_keys && o.api_keys.total) || 0;
      const requests = (o.requests && o.requests.total) || 0;
      const complete = accounts > 0 && keys > 0 && requests > 0;
      // Once everything is done, the checklist is only kept for the answer just shown.
      const answer = firstRunState.answer;
      if (firstRunState.dismissed || (complete && !built && !answer)) return;
      if (!built) {
        build();
        root.classList.remove('hidden');
      }
      tick('account', accounts > 0);
      tick('key', keys > 0);
      tick('call', requests > 0 || !!answer);
      const ready = accounts > 0 && keys > 0;
      needs.classList.toggle('hidden', ready);
      callForm.classList.toggle('hidden', !ready);
      if (answer && !result.childElementCount) showAnswer(answer);
      if (ready && !keySelect.options.length) {
        try {
          await fillChoices();
        } catch {
          /* the form stays empty; the next refresh tries again */
        }
      }
    }

    return { el: root, update };
  }

  // ---- charts -------------------------------------------------------------
  function chartCard(testid, title, body) {
    return h('section', { class: 'card bg-base-100 shadow-sm border border-base-300', testid }, h('div', { class: 'card-body gap-3 p-5' }, h('h3', { class: 'font-semibold' }, title), body));
  }

  function destroyCharts() {
    while (charts.length) charts.pop().destroy();
  }

  function setRange(r) {
    if (r === range && usage) return;
    range = r;
    replaceParams('dashboard', { range: r === '24h' ? undefined : r });
    loadUsage();
  }

  function markRange() {
    for (const b of rangeButtons) {
      const on = b.dataset.range === range;
      b.classList.toggle('btn-primary', on);
      b.setAttribute('aria-pressed', String(on));
    }
  }

  async function loadUsage() {
    markRange();
    destroyCharts();
    setChildren(chartArea, h('div', { class: 'xl:col-span-2' }, loadingBlock('charts-loading')));
    const wanted = range;
    try {
      const [Chart, data] = await Promise.all([loadChart(), api.get('/stats/usage', { range: wanted })]);
      if (disposed || wanted !== range) return;
      usage = data;
      drawCharts(Chart);
    } catch (err) {
      if (disposed || wanted !== range || err.status === 401) return;
      setChildren(chartArea, h('div', { class: 'xl:col-span-2 card bg-base-100 border border-base-300' }, errorBlock(err, loadUsage)));
    }
  }

  function canvasBox(testid) {
    const canvas = h('canvas', { testid: `${testid}-canvas`, role: 'img' });
    return { canvas, box: h('div', { class: 'chart-box' }, canvas) };
  }

  function drawCharts(Chart) {
    destroyCharts();
    applyChartTheme(Chart);
    const u = usage || {};
    const series = Array.isArray(u.series) ? u.series : [];
    const hourly = (u.bucket || (range === '24h' ? 'hour' : 'day')) === 'hour';
    const labels = series.map((p) => (hourly ? fmtTime(p.ts, range !== '24h') : fmtDay(p.ts)));
    const hasSeries = series.some((p) => p.requests || p.errors || p.input_tokens || p.output_tokens);
    const compactTicks = { callback: (v) => fmtCompact(v) };
    const blocks = [];

    // Requests and errors over time.
    if (hasSeries) {
      const { canvas, box } = canvasBox('chart-requests');
      blocks.push(chartCard('chart-requests', t('chart.requests'), box));
      charts.push(
        new Chart(canvas, {
          data: {
            labels,
            datasets: [
              { type: 'bar', label: t('chart.requestsLabel'), data: series.map((p) => p.requests || 0), backgroundColor: themeColor('primary', 0.75), borderRadius: 3, order: 2 },
              { type: 'line', label: t('chart.errorsLabel'), data: series.map((p) => p.errors || 0), borderColor: themeColor('error'), backgroundColor: themeColor('error'), pointRadius: 0, tension: 0.3, order: 1 },
            ],
          },
          options: { interaction: { mode: 'index', intersect: false }, plugins: { legend: { labels: { sort: (a, b) => a.datasetIndex - b.datasetIndex } } }, scales: { y: { beginAtZero: true, ticks: { precision: 0, ...compactTicks } }, x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } } } },
        }),
      );
      const { canvas: c2, box: b2 } = canvasBox('chart-tokens');
      blocks.push(chartCard('chart-tokens', t('chart.tokens'), b2));
      charts.push(
        new Chart(c2, {
          type: 'bar',
          data: {
            labels,
            datasets: [
              { label: t('chart.input'), data: series.map((p) => p.input_tokens || 0), backgroundColor: themeColor('info', 0.8), borderRadius: 3 },
              { label: t('chart.output'), data: series.map((p) => p.output_tokens || 0), backgroundColor: themeColor('secondary', 0.8), borderRadius: 3 },
            ],
          },
          options: {
            interaction: { mode: 'index', intersect: false },
            scales: { x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } }, y: { stacked: true, beginAtZero: true, ticks: compactTicks } },
            plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmtNum(c.parsed.y)}` } } },
          },
        }),
      );
    } else {
      blocks.push(chartCard('chart-requests', t('chart.requests'), emptyBlock(t('chart.noData'), t('chart.noDataHint'), 'activity')));
      blocks.push(chartCard('chart-tokens', t('chart.tokens'), emptyBlock(t('chart.noData'), null, 'hash')));
    }

    // The prompt cache and conversation affinity: the share of input tokens the upstream's
    // cache held, over time, and how often a conversation went back to its pinned account.
    {
      const share = Number.isFinite(u.cached_share) ? u.cached_share : null;
      const aff = u.affinity || {};
      const pinned = (aff.hits || 0) + (aff.moved || 0);
      const figures = h(
        'div',
        { class: 'grid grid-cols-2 gap-3' },
        metric('cache-share', t('chart.cachedShare'), fmtPercent(share), t('chart.cachedShareHint')),
        metric('affinity-rate', t('chart.affinityRate'), fmtPercent(Number.isFinite(aff.hit_rate) ? aff.hit_rate : null), t('chart.affinityHint', { hits: fmtNum(aff.hits || 0), pinned: fmtNum(pinned), moved: fmtNum(aff.moved || 0) })),
      );
      const points = series.map((p) => (Number.isFinite(p.cached_share) ? Math.round(p.cached_share * 1000) / 10 : null));
      let body = figures;
      if (points.some((v) => v !== null)) {
        const { canvas, box } = canvasBox('chart-cache');
        body = h('div', { class: 'flex flex-col gap-3' }, figures, box);
        charts.push(
          new Chart(canvas, {
            type: 'line',
            data: { labels, datasets: [{ label: t('chart.cachedShare'), data: points, borderColor: themeColor('success'), backgroundColor: themeColor('success', 0.15), fill: true, spanGaps: true, pointRadius: 2, tension: 0.3 }] },
            options: {
              interaction: { mode: 'index', intersect: false },
              plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${t('chart.cachedShare')}: ${c.parsed.y}%` } } },
              scales: { y: { beginAtZero: true, max: 100, ticks: { callback: (v) => `${v}%` } }, x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } } },
            },
          }),
        );
      }
      blocks.push(chartCard('chart-cache', t('chart.cache'), body));
    }

    // Requests by model.
    const byModel = (Array.isArray(u.by_model) ? u.by_model : []).filter((m) => m.requests > 0).sort((a, b) => b.requests - a.requests);
    if (byModel.length) {
      const { canvas, box } = canvasBox('chart-models');
      blocks.push(chartCard('chart-models', t('chart.byModel'), box));
      const top = byModel.slice(0, 8);
      charts.push(
        new Chart(canvas, {
          type: 'doughnut',
          data: { labels: top.map((m) => m.model || '—'), datasets: [{ data: top.map((m) => m.requests), backgroundColor: palette(top.length), borderColor: themeColor('base-100'), borderWidth: 2 }] },
          options: {
            cutout: '62%',
            plugins: {
              legend: { position: 'right' },
              tooltip: {
                callbacks: {
                  label: (c) => {
                    const m = top[c.dataIndex];
                    return `${t('chart.requestsLabel')}: ${fmtNum(m.requests)} · ${t('chart.input')}: ${fmtCompact(m.input_tokens)} · ${t('chart.output')}: ${fmtCompact(m.output_tokens)}`;
                  },
                },
              },
            },
          },
        }),
      );
    } else {
      blocks.push(chartCard('chart-models', t('chart.byModel'), emptyBlock(t('chart.noData'), null, 'dashboard')));
    }

    // Requests by account.
    const byToken = (Array.isArray(u.by_token) ? u.by_token : []).filter((x) => x.requests > 0).sort((a, b) => b.requests - a.requests).slice(0, 10);
    if (byToken.length) {
      const { canvas, box } = canvasBox('chart-accounts');
      blocks.push(chartCard('chart-accounts', t('chart.byAccount'), box));
      charts.push(
        new Chart(canvas, {
          type: 'bar',
          data: { labels: byToken.map((x) => x.email || `#${x.token_id}`), datasets: [{ label: t('chart.requestsLabel'), data: byToken.map((x) => x.requests), backgroundColor: themeColor('accent', 0.8), borderRadius: 3, maxBarThickness: 28 }] },
          options: {
            indexAxis: 'y',
            plugins: {
              legend: { display: false },
              tooltip: {
                callbacks: {
                  label: (c) => {
                    const x = byToken[c.dataIndex];
                    const share = Number.isFinite(x.cached_share) ? ` · ${t('chart.cachedShare')}: ${fmtPercent(x.cached_share)}` : '';
                    return `${t('chart.requestsLabel')}: ${fmtNum(x.requests)}${share}`;
                  },
                },
              },
            },
            scales: { x: { beginAtZero: true, ticks: { precision: 0, ...compactTicks } }, y: { grid: { display: false }, ticks: { callback: function (v) { const s = this.getLabelForValue(v); const max = this.chart.width < 420 ? 16 : 24; return s.length > max ? `${s.slice(0, max - 1)}…` : s; } } } },
          },
        }),
      );
    } else {
      blocks.push(chartCard('chart-accounts', t('chart.byAccount'), emptyBlock(t('chart.noData'), null, 'users')));
    }

    // Requests by API key (the busiest ten).
    const byKey = (Array.isArray(u.by_api_key) ? u.by_api_key : []).filter((x) => x.requests > 0).sort((a, b) => b.requests - a.requests).slice(0, 10);
    if (byKey.length) {
      const { canvas, box } = canvasBox('chart-keys');
      blocks.push(chartCard('chart-keys', t('chart.byKey'), box));
      charts.push(
        new Chart(canvas, {
          type: 'bar',
          data: { labels: byKey.map((x) => x.name || `#${x.api_key_id}`), datasets: [{ label: t('chart.requestsLabel'), data: byKey.map((x) => x.requests), backgroundColor: themeColor('primary', 0.8), borderRadius: 3, maxBarThickness: 28 }] },
          options: {
            indexAxis: 'y',
            plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${t('chart.requestsLabel')}: ${fmtNum(c.parsed.x)}` } } },
            scales: { x: { beginAtZero: true, ticks: { precision: 0, ...compactTicks } }, y: { grid: { display: false }, ticks: { callback: function (v) { const s = this.getLabelForValue(v); const max = this.chart.width < 420 ? 16 : 24; return s.length > max ? `${s.slice(0, max - 1)}…` : s; } } } },
          },
        }),
      );
    } else {
      blocks.push(chartCard('chart-keys', t('chart.byKey'), emptyBlock(t('chart.noData'), null, 'key')));
    }

    setChildren(chartArea, blocks);
  }

  // Charts read theme colours when drawn, so redraw them on a theme switch.
  const onTheme = () => {
    if (usage && window.Chart) drawCharts(window.Chart);
  };
  window.addEventListener('themechange', onTheme);

  // Live refresh: every 10 s while the tab is visible; at once when it comes back.
  const tick = () => {
    if (document.hidden) return;
    refreshLive();
  };
  const onVisible = () => {
    if (!document.hidden && Date.now() - lastLive > LIVE_INTERVAL_MS) refreshLive();
  };
  document.addEventListener('visibilitychange', onVisible);
  timer = setInterval(tick, LIVE_INTERVAL_MS);
  const stampTimer = setInterval(stamp, 1000);

  refreshLive();
  loadUsage();

  return () => {
    disposed = true;
    clearInterval(timer);
    clearInterval(stampTimer);
    window.removeEventListener('themechange', onTheme);
    document.removeEventListener('visibilitychange', onVisible);
    destroyCharts();
  };
}

