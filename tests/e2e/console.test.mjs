// Browser end-to-end tests of the admin console (issue 5), as an operator would use it:
// headless Debian Chromium driven by playwright-core, against the real gateway binary and the
// mock Codex upstream that tests/e2e/run.sh starts. The tests run in order and share one
// browser page, like one person's visit:
//
//   sign in (wrong, then right password) -> import the fixture files and the mock's accounts ->
//   create a key -> proxied requests with it -> disable / enable it -> dashboard -> logs and
//   their filters -> an account named like markup -> screenshots of every page in both
//   languages -> runtime settings -> delete the key -> change the password -> log out.
//
// Environment (set by run.sh): GPT2API_URL, GPT2API_ADMIN_PASSWORD, GPT2API_MOCK_ACCOUNTS_FILE, GPT2API_MOCK_ROOT_URL,
// E2E_FIXTURES, E2E_ARTIFACTS, E2E_NODE_MODULES, E2E_CHROMIUM.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const require = createRequire(import.meta.url);
const { chromium } = require(process.env.E2E_NODE_MODULES ? join(process.env.E2E_NODE_MODULES, 'playwright-core') : 'playwright-core');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with tests/e2e/run.sh`);
  return v;
}

const BASE = env('GPT2API_URL');
const ADMIN = 'admin';
const FIRST_PASSWORD = env('GPT2API_ADMIN_PASSWORD');
const NEW_PASSWORD = `${FIRST_PASSWORD}-New!2`;
const MOCK_ACCOUNTS = env('GPT2API_MOCK_ACCOUNTS_FILE');
const MOCK_ROOT = env('GPT2API_MOCK_ROOT_URL');
const FIXTURES = process.env.E2E_FIXTURES || join(repo, 'tests', 'fixtures', 'auth');
const ARTIFACTS = process.env.E2E_ARTIFACTS || join(repo, 'target', 'e2e-artifacts');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CONSOLE = `${BASE}/admin/`;
const XSS = '<img src=x onerror=alert(1)>';
const KEY_NAME = 'e2e key';
const PAGES = ['dashboard', 'keys', 'tokens', 'logs', 'settings'];
const LANGS = ['en', 'zh-CN'];
const DICT = Object.fromEntries(LANGS.map((l) => [l, JSON.parse(readFileSync(join(repo, 'frontend', 'dist', 'assets', `i18n.${l}.json`), 'utf8'))]));

// Proxied requests the tests send, and what the logs must show for them.
const SUCCESS_USAGE = { input: 12, output: 8 }; // what the mock reports for every answer
const state = { key: null, successes: 0, errors: 0 };

let browser;
let context;
let page;
const dialogs = []; // every alert/confirm/prompt the page opened (there must be none)
const pageErrors = []; // uncaught exceptions in the page

// ---- helpers ------------------------------------------------------------------------------------

const byId = (id) => page.getByTestId(id);

/** Retries `fn` until it stops throwing, up to `timeout` ms; rethrows the last failure. */
async function eventually(fn, timeout = 10_000, interval = 150) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}

async function text(locator) {
  return ((await locator.textContent()) || '').replace(/\s+/g, ' ').trim();
}

/** Waits for a toast of this kind whose text contains `contains`, then dismisses all toasts. */
async function expectToast(kind, contains) {
  const t = page.locator(`[data-testid="toast"][data-kind="${kind}"]`, contains ? { hasText: contains } : undefined);
  await t.first().waitFor({ state: 'visible' });
  const msg = await text(t.first());
  await page.evaluate(() => document.querySelectorAll('[data-testid="toast"]').forEach((el) => el.click()));
  return msg;
}

/** Waits until no loading block is left on the page. */
async function settled() {
  await page.waitForFunction(() => !document.querySelector('[data-testid="loading"], [data-testid="charts-loading"], [aria-busy="true"]'));
}

/** Waits until page `name` is the one mounted (the hash changes before the page renders). */
async function mounted(name) {
  await page.waitForFunction((n) => {
    const link = document.querySelector(`[data-testid="nav-${n}"]`);
    return window.location.hash.startsWith(`#/${n}`) && link && link.getAttribute('aria-current') === 'page' && document.querySelector('[data-testid="page-title"]');
  }, name);
  await settled();
}

async function go(name, params = '') {
  await page.goto(`${CONSOLE}#/${name}${params}`);
  await mounted(name);
}

async function clickNav(name) {
  await byId(`nav-${name}`).click();
  await mounted(name);
}

async function shot(name) {
  await page.evaluate(() => document.fonts.ready);
  // No hover highlight where the last click happened.
  await page.mouse.move(0, 0);
  // Toasts come and go; they are not part of the page.
  await page.evaluate(() => document.querySelectorAll('[data-testid="toast"]').forEach((el) => el.remove()));
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function currentLang() {
  return page.evaluate(() => document.documentElement.lang);
}

async function setLang(lang) {
  if ((await currentLang()) === lang) return;
  await byId('lang-switch').first().click();
  await page.waitForFunction((l) => document.documentElement.lang === l, lang);
  await settled();
}

/** Signs in through the form; `expectOk` false expects the inline error instead. */
async function signIn(password, expectOk = true) {
  await byId('login-form').waitFor();
  await byId('login-username').fill(ADMIN);
  await byId('login-password').fill(password);
  await byId('login-submit').click();
  if (expectOk) {
    await page.waitForFunction(() => !window.location.hash.startsWith('#/login'));
    await byId('shell').waitFor();
  } else {
    await byId('login-error').waitFor({ state: 'visible' });
  }
}

/** POST /v1/chat/completions from node, as a client application would. */
async function chat(key, content, { model = 'gpt-5', stream = false } = {}) {
  const res = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream, messages: [{ role: 'user', content }] }),
  });
  const body = await res.text();
  let json = null;
  try {
    json = JSON.parse(body);
  } catch {
    /* a stream */
  }
  return { status: res.status, body, json };
}

/** The admin API with the browser's session cookie (to wait for the log writer only). */
async function adminGet(path) {
  const res = await page.request.get(`${BASE}/admin${path}`);
  assert.equal(res.status(), 200, `GET /admin${path}`);
  return res.json();
}

async function waitForLogs(total) {
  await eventually(async () => {
    const logs = await adminGet('/logs?page_size=1');
    assert.equal(logs.total, total, 'logs written');
  }, 10_000);
}

function keyRow(name) {
  return page.locator(`[data-testid="key-row"][data-name="${name}"]`);
}

function tokenRow(email) {
  return page.locator(`[data-testid="token-row"][data-email="${email}"]`);
}

// ---- set-up -------------------------------------------------------------------------------------

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({
    viewport: { width: 1366, height: 768 },
    locale: 'en-US',
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  context.setDefaultTimeout(10_000);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  page = await context.newPage();
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message)));
});

after(async () => {
  if (browser) await browser.close();
});

// ---- the visit ----------------------------------------------------------------------------------

test('sign in: a wrong password shows an inline error, the right one opens the dashboard', async () => {
  await page.goto(CONSOLE);
  // Not signed in: the console sends the visitor to the login page.
  await page.waitForFunction(() => window.location.hash.startsWith('#/login'));
  await byId('login-form').waitFor();
  assert.equal(await currentLang(), 'en', 'the language follows the browser (en-US)');
  await shot('en-login');

  await signIn('Not-the-Passw0rd', false);
  const error = byId('login-error');
  assert.equal(await error.getAttribute('data-code'), 'invalid_credentials');
  assert.equal(await text(byId('login-error-text')), DICT.en['login.invalid']);
  assert.ok(page.url().includes('#/login'), 'still on the login page');
  await shot('en-login-error');

  await signIn(FIRST_PASSWORD);
  await page.waitForFunction(() => window.location.hash.startsWith('#/dashboard'));
  await byId('stat-cards').waitFor();
  assert.equal(await text(byId('current-username')), ADMIN);
  assert.equal(await byId('login-error').count(), 0);
  // The session is an HttpOnly cookie: nothing secret is readable by scripts or kept in storage.
  const stored = await page.evaluate(() => ({ cookie: document.cookie, local: JSON.stringify(localStorage), session: JSON.stringify(sessionStorage) }));
  assert.ok(!/eyJ/.test(stored.cookie + stored.local + stored.session), 'no token visible to scripts');
});

test('tokens: importing the fixture files shows each file\'s result and the statuses', async () => {
  await clickNav('tokens');
  assert.equal(await byId('token-row').count(), 0);
  assert.equal(await byId('empty-state').count(), 1, 'the empty table says so');

  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort();
  assert.equal(files.length, 6);
  await byId('tokens-file-input').setInputFiles(files.map((f) => join(FIXTURES, f)));

  const summary = byId('import-summary');
  await summary.waitFor();
  assert.equal(await summary.getAttribute('data-imported'), '5');
  assert.equal(await summary.getAttribute('data-updated'), '0');
  assert.equal(await summary.getAttribute('data-failed'), '2');
  await expectToast('warning');

  const item = (name) => page.locator(`[data-testid="import-result-item"][data-source="${name}"]`);
  assert.equal(await byId('import-result-item').count(), 6, 'one line per file');
  for (const ok of ['array-of-two.json', 'codex-3f9a12bc-bob@example.com-pro.json', 'codex-alice@example.com-plus.json', 'codex-cli-auth.json']) {
    assert.equal(await item(ok).getAttribute('data-status'), 'ok', ok);
  }
  assert.equal(await item('broken-not-json.json').getAttribute('data-status'), 'failed');
  assert.match(await text(item('broken-not-json.json').getByTestId('import-result-reason')), /JSON/i);
  assert.equal(await item('missing-refresh-token.json').getAttribute('data-status'), 'failed');
  assert.match(await text(item('missing-refresh-token.json').getByTestId('import-result-reason')), /refresh_token/);

  // The table shows the five accounts, their plans and statuses.
  await eventually(async () => assert.equal(await byId('token-row').count(), 5));
  const expected = {
    'alice@example.com': 'plus',
    'bob@example.com': 'pro',
    'carol@example.com': 'team',
    'dave@example.com': null,
    'erin@example.com': null,
  };
  for (const [email, plan] of Object.entries(expected)) {
    const row = tokenRow(email);
    assert.equal(await row.count(), 1, email);
    assert.equal(await row.getAttribute('data-status'), 'active', `${email} status`);
    assert.equal(await row.getByTestId('token-status').getAttribute('data-status'), 'active');
    assert.equal(await text(row.getByTestId('token-status')), DICT.en['status.active']);
    if (plan) assert.equal((await text(row.getByTestId('token-plan'))).toLowerCase(), plan, `${email} plan`);
    assert.match(await text(row.getByTestId('token-expiry')), /^in /, `${email} expiry countdown`);
  }
  assert.match(await text(byId('pager-info')), /of 5$/);
  await shot('en-tokens-imported');
});

test('tokens: a file of many bad entries lists the first ones and counts the rest', async () => {
  const junk = JSON.stringify(Array.from({ length: 150 }, (_, i) => ({ junk: i })));
  await byId('tokens-file-input').setInputFiles({ name: 'junk.json', mimeType: 'application/json', buffer: Buffer.from(junk) });
  const summary = byId('import-summary');
  await eventually(async () => assert.equal(await summary.getAttribute('data-failed'), '150'));
  assert.equal(await summary.getAttribute('data-imported'), '0');
  const item = page.locator('[data-testid="import-result-item"][data-source="junk.json"]');
  assert.equal(await item.getByTestId('import-result-reason').count(), 100, 'the first hundred are listed');
  assert.match(await text(byId('import-result-more')), /\b50\b/);
});

test('tokens: importing the mock upstream\'s accounts adds them', async () => {
  await byId('tokens-file-input').setInputFiles(MOCK_ACCOUNTS);
  const summary = byId('import-summary');
  await eventually(async () => assert.equal(await summary.getAttribute('data-imported'), '2'));
  assert.equal(await summary.getAttribute('data-failed'), '0');
  const item = page.locator('[data-testid="import-result-item"]');
  assert.equal(await item.count(), 1);
  assert.equal(await item.getAttribute('data-status'), 'ok');
  await expectToast('success');
  await eventually(async () => assert.equal(await byId('token-row').count(), 7));
  for (const email of ['mock-account-001@example.com', 'mock-account-002@example.com']) {
    assert.equal(await tokenRow(email).getAttribute('data-status'), 'active', email);
  }
});

test('keys: create a key and read it from the dialog', async () => {
  await clickNav('keys');
  assert.equal(await byId('key-row').count(), 0);
  await byId('keys-create-button').click();
  const form = byId('key-dialog');
  await form.waitFor();
  // An empty name is refused in the form itself.
  await byId('key-form-submit').click();
  await byId('key-form-error').waitFor({ state: 'visible' });
  await byId('key-form-name').fill(KEY_NAME);
  await byId('key-form-rpm').fill('600');
  await byId('key-form-submit').click();

  const dialog = byId('new-key-dialog');
  await dialog.waitFor();
  assert.equal(await form.count(), 0, 'the form dialog is closed');
  assert.ok((await text(byId('new-key-warning'))).length > 10, 'a plain warning that the key is shown once');
  const key = await text(byId('new-key-value'));
  assert.match(key, /^sk-[A-Za-z0-9]{32}$/);
  state.key = key;
  await byId('new-key-copy').click();
  await expectToast('success', DICT.en['keys.copied']);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key, 'the copy button copies the key');
  await shot('en-keys-new-key');
  await byId('new-key-done').click();
  await dialog.waitFor({ state: 'detached' });

  const row = keyRow(KEY_NAME);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-active'), 'true');
  const masked = await text(row.getByTestId('key-masked'));
  assert.ok(masked.startsWith(key.slice(0, 5)) && masked.endsWith(key.slice(-4)), `masked ${masked}`);
  assert.ok(!masked.includes(key.slice(7, 30)), 'the list never shows the whole key');
  assert.match(await text(row), /RPM 600/);
  // Shown once: a reload does not bring the full key back.
  await page.reload();
  await keyRow(KEY_NAME).waitFor();
  assert.ok(!(await page.content()).includes(key));
});

test('proxy: requests with the new key succeed once accounts are imported', async () => {
  assert.ok(state.key, 'a key was created');
  const plan = [
    { content: 'hello from the e2e test' },
    { content: 'second question' },
    { content: 'a codex question', model: 'gpt-5-codex' },
    { content: 'streamed question', stream: true },
  ];
  for (const p of plan) {
    const res = await chat(state.key, p.content, p);
    assert.equal(res.status, 200, res.body);
    if (p.stream) {
      assert.match(res.body, /chat\.completion\.chunk/);
      assert.match(res.body, /data: \[DONE\]/);
    } else {
      assert.match(res.json.choices[0].message.content, /Hello from .*You said:/);
    }
    state.successes += 1;
  }
  // One the upstream refuses: logged as an error with its reason.
  const bad = await chat(state.key, 'please fail [mock:unsupported_model]');
  assert.equal(bad.status, 400, bad.body);
  state.errors += 1;
  // The accounts page shows the conversations pinned to the accounts that served them.
  await clickNav('tokens');
  await byId('token-pinned').first().waitFor();
  assert.match(await text(byId('token-pinned').first()), /^\d+ conversations? pinned$/);
});

test('keys: a disabled key gets 401, enabled again it works', async () => {
  await clickNav('keys');
  const row = keyRow(KEY_NAME);
  await row.getByTestId('key-toggle').click();
  await expectToast('success', DICT.en['keys.disabled'].replace('{name}', KEY_NAME));
  assert.equal(await row.getAttribute('data-active'), 'false');
  assert.equal(await row.getByTestId('key-toggle').isChecked(), false);

  const refused = await chat(state.key, 'am I still allowed?');
  assert.equal(refused.status, 401, refused.body);
  assert.equal(refused.json.error.code, 'invalid_api_key');

  // The state survives a reload (it is the server's).
  await page.reload();
  await keyRow(KEY_NAME).waitFor();
  assert.equal(await keyRow(KEY_NAME).getByTestId('key-toggle').isChecked(), false);

  await keyRow(KEY_NAME).getByTestId('key-toggle').click();
  await expectToast('success', DICT.en['keys.enabled'].replace('{name}', KEY_NAME));
  assert.equal(await keyRow(KEY_NAME).getAttribute('data-active'), 'true');
  const again = await chat(state.key, 'and now?');
  assert.equal(again.status, 200, again.body);
  state.successes += 1;
});

test('dashboard: the requests show in the cards and the charts', async () => {
  const total = state.successes + state.errors;
  await waitForLogs(total);
  await clickNav('dashboard');
  await byId('stat-requests-value').waitFor();
  assert.equal(await text(byId('stat-keys-value')), '1');
  assert.equal(await text(byId('stat-accounts-value')), '7 / 7');
  assert.equal(await text(byId('stat-requests-value')), String(total));
  assert.equal(await text(byId('stat-errors-value')), state.errors === 1 ? '1 error' : `${state.errors} errors`);
  const tokens = state.successes * (SUCCESS_USAGE.input + SUCCESS_USAGE.output);
  assert.equal(await text(byId('stat-tokens-value')), String(tokens));
  assert.equal(await text(byId('live-requests-value')), String(total));
  assert.equal(await text(byId('live-errors-value')), String(state.errors));
  assert.equal(await text(byId('live-available-value')), '7 / 7');
  await byId('attention-none').waitFor();

  // All four charts are drawn (canvases, not the "no data yet" state) for every range.
  for (const range of ['24h', '7d', '30d']) {
    await byId(`range-${range}`).click();
    await settled();
    assert.equal(await byId(`range-${range}`).getAttribute('aria-pressed'), 'true');
    for (const chart of ['chart-requests', 'chart-tokens', 'chart-models', 'chart-accounts']) {
      await byId(`${chart}-canvas`).waitFor();
    }
    assert.equal(await byId('charts').getByTestId('empty-state').count(), 0, range);
  }
  // The model chart's data are the ones the requests used.
  const models = await page.evaluate(() => {
    const c = window.Chart.getChart(document.querySelector('[data-testid="chart-models-canvas"]'));
    return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]]));
  });
  assert.deepEqual(models, { 'gpt-5': total - 1, 'gpt-5-codex': 1 });
  const series = await page.evaluate(() => {
    const c = window.Chart.getChart(document.querySelector('[data-testid="chart-requests-canvas"]'));
    return c.data.datasets.map((d) => d.data.reduce((a, b) => a + b, 0));
  });
  assert.deepEqual(series, [total, state.errors], 'requests and errors over time');
  await byId('range-24h').click();
  await settled();
  // The prompt cache's share of the input (the mock reports 4 of 12 tokens cached) over time,
  // and how often conversations went back to their pinned account.
  await byId('chart-cache-canvas').waitFor();
  assert.equal(await text(byId('cache-share-value')), '33.3%');
  assert.match(await text(byId('affinity-rate-value')), /^(\d+(\.\d)?%|—)$/);
});

test('logs: every request is listed; the status filter separates errors from successes', async () => {
  const total = state.successes + state.errors;
  await clickNav('logs');
  assert.equal(await text(byId('logs-total')), String(total));
  assert.equal(await byId('log-row').count(), total);
  const first = byId('log-row').first();
  assert.equal(await text(first.getByTestId('log-key')), KEY_NAME);

  await byId('logs-filter-status').selectOption('error');
  await settled();
  await eventually(async () => assert.equal(await text(byId('logs-total')), String(state.errors)));
  assert.equal(await byId('log-row').count(), state.errors);
  assert.equal(await byId('log-row').first().getAttribute('data-status'), 'error');
  assert.equal(await text(byId('log-row').first().getByTestId('log-status')), '400');
  assert.match(await text(byId('log-error-snippet').first()), /not supported/);
  assert.ok(page.url().includes('status=error'), 'the filter is in the address');

  // The full error of a failed request.
  await byId('log-detail-button').first().click();
  await byId('log-detail-dialog').waitFor();
  assert.match(await text(byId('log-detail-error')), /not supported/);
  await shot('en-logs-error-detail');
  await page.keyboard.press('Escape');
  await byId('log-detail-dialog').waitFor({ state: 'detached' });

  // A reload keeps the filter.
  await page.reload();
  await byId('logs-tbody').waitFor();
  await settled();
  assert.equal(await byId('logs-filter-status').inputValue(), 'error');
  assert.equal(await byId('log-row').count(), state.errors);

  await byId('logs-filter-status').selectOption('success');
  await settled();
  await eventually(async () => assert.equal(await text(byId('logs-total')), String(state.successes)));
  const statuses = await byId('log-row').evaluateAll((rows) => rows.map((r) => r.dataset.status));
  assert.deepEqual(statuses, Array(state.successes).fill('success'));
  assert.equal(await byId('log-error-row').count(), 0);

  // Model filter, then clearing the filters.
  await byId('logs-filter-status').selectOption('');
  await byId('logs-filter-model').fill('gpt-5-codex');
  await byId('logs-filter-apply').click();
  await settled();
  await eventually(async () => assert.equal(await text(byId('logs-total')), '1'));
  await byId('logs-filter-reset').click();
  await settled();
  await eventually(async () => assert.equal(await text(byId('logs-total')), String(total)));
});

test('an account named like markup is rendered as text', async () => {
  await clickNav('tokens');
  const row = tokenRow('alice@example.com');
  await row.getByTestId('token-rename').click();
  await byId('rename-dialog').waitFor();
  await byId('token-rename-input').fill(XSS);
  await byId('token-rename-submit').click();
  await expectToast('success');
  await byId('rename-dialog').waitFor({ state: 'detached' });

  const check = async () => {
    const renamed = tokenRow('alice@example.com');
    await eventually(async () => assert.equal(await text(renamed.getByTestId('token-name')), XSS));
    assert.ok(await renamed.getByTestId('token-name').isVisible());
    await page.getByText(XSS, { exact: true }).first().waitFor();
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no img element was created');
    assert.equal(await page.locator('main img').count(), 0);
  };
  await check();
  // From the server, after a reload.
  await page.reload();
  await byId('token-row').first().waitFor();
  await check();
  await shot('en-tokens-markup-name');
  // The logs page lists accounts by name in its filter.
  await clickNav('logs');
  const option = byId('logs-filter-account').locator('option', { hasText: XSS });
  await eventually(async () => assert.equal(await option.count(), 1));
  assert.equal(await page.locator('img[src="x"]').count(), 0);
  // Give an onerror handler, had one been created, the time to run.
  await page.waitForTimeout(300);
  assert.deepEqual(dialogs, [], 'no dialog was opened');
});

test('screenshots of every page in both languages', async () => {
  for (const lang of LANGS) {
    await go('dashboard');
    await setLang(lang);
    for (const name of PAGES) {
      await go(name);
      if (name === 'dashboard') await byId('chart-requests-canvas').waitFor();
      assert.equal(await text(byId('page-title')), DICT[lang][`nav.${name}`], `${lang} ${name} title`);
      assert.equal(await text(byId(`nav-${name}`)), DICT[lang][`nav.${name}`]);
      await shot(`${lang}-${name}`);
    }
  }
  // At 1366 px the menu column reaches the bottom of a long page.
  await setLang('en');
  await go('dashboard');
  await byId('chart-requests-canvas').waitFor();
  const box = await page.evaluate(() => {
    const side = document.querySelector('[data-testid="nav-side"]');
    const r = side.getBoundingClientRect();
    return { sideBottom: r.bottom + window.scrollY, bg: getComputedStyle(side).backgroundColor, page: document.documentElement.scrollHeight };
  });
  assert.ok(box.page > 768, 'the dashboard is longer than the window');
  assert.ok(box.sideBottom >= box.page - 1, `menu column ends at ${box.sideBottom}px of ${box.page}px`);
  assert.notEqual(box.bg, 'rgba(0, 0, 0, 0)', 'the menu column has its own background');
  // Scrolled to the bottom, the menu is still in view.
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  assert.ok(await byId('nav-dashboard').isVisible());
  const navTop = await byId('nav-dashboard').evaluate((el) => el.getBoundingClientRect().top);
  assert.ok(navTop > 0 && navTop < 200, `menu stays under the top bar (top ${navTop})`);
});

test('on a narrow screen the menu is a drawer and every page still fits', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await go('dashboard');
    assert.equal(await byId('nav-logs').isVisible(), false, 'the menu is folded away');
    await byId('nav-toggle').click();
    await byId('nav-logs').waitFor({ state: 'visible' });
    await byId('nav-logs').click();
    await page.waitForFunction(() => window.location.hash.startsWith('#/logs'));
    await byId('logs-tbody').waitFor();
    await eventually(async () => assert.equal(await byId('nav-logs').isVisible(), false, 'the drawer closes after a choice'));
    for (const name of PAGES) {
      await go(name);
      if (name === 'dashboard') await byId('chart-requests-canvas').waitFor();
      // Only tables may scroll sideways, never the page itself.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${name} is ${overflow}px wider than the screen`);
      await shot(`en-narrow-${name}`);
    }
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
  }
});

/** Tells the mock upstream who signs in and how the device endpoints behave. */
async function mockSignIn(settings) {
  const res = await fetch(`${MOCK_ROOT}/__mock/signin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
  assert.equal(res.status, 200, 'mock sign-in control');
}

/** A screenshot of the window (the dialog scrolls inside it) with `testid` in view. */
async function dialogShot(name, testid) {
  if (testid) await byId(testid).scrollIntoViewIfNeeded();
  await page.evaluate(() => document.fonts.ready);
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.querySelectorAll('[data-testid="toast"]').forEach((el) => el.remove()));
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Opens the "Sign in with OpenAI" dialog on the tokens page. */
async function openSignInDialog() {
  await go('tokens');
  await byId('tokens-signin').click();
  await byId('signin-dialog').waitFor();
}

/** The dialog must fit the screen: no sideways scrolling inside it or of the page. */
async function fitsWidth(what) {
  const overflow = await page.evaluate(() => {
    const box = document.querySelector('[data-testid="signin-dialog"] .modal-box');
    return Math.max(box.scrollWidth - box.clientWidth, document.documentElement.scrollWidth - document.documentElement.clientWidth);
  });
  assert.ok(overflow <= 0, `${what} is ${overflow}px wider than the screen`);
}

/** Clicks "open the sign-in page" and answers the address the new tab lands on. */
async function signInInNewTab() {
  const opened = context.waitForEvent('page');
  await byId('signin-pkce-open').click();
  const tab = await opened;
  await tab.waitForURL(/localhost:1455\/auth\/callback/);
  const landed = tab.url();
  await tab.close();
  return landed;
}

test('tokens: signing in with OpenAI adds accounts, by a pasted address and by a device code, in both languages at 375 px', async () => {
  // The browser lands on http://localhost:1455/auth/callback, which serves nothing, as in real life.
  await context.route('http://localhost:1455/**', (route) => route.fulfill({ status: 502, contentType: 'text/plain', body: 'This site can\'t be reached' }));
  await page.setViewportSize({ width: 375, height: 812 });
  try {
    for (const lang of LANGS) {
      await go('tokens');
      await setLang(lang);
      const d = DICT[lang];
      const email = `signin-${lang.toLowerCase()}@example.com`;
      await mockSignIn({ account_id: `signin-${lang.toLowerCase()}`, device_enabled: true, device_approve_after: null, device_interval: '0.2', device_expired: false });

      // PKCE: open the page in a new tab, paste where it landed, the account is added.
      await openSignInDialog();
      assert.equal(await text(byId('signin-tab-pkce')), d['signin.tabPkce']);
      assert.equal(await byId('signin-pkce-steps').locator('li').count(), 3);
      await dialogShot(`${lang}-signin-pkce-375`);
      await fitsWidth(`${lang} PKCE tab`);
      const landed = await signInInNewTab();
      assert.ok(landed.includes('code=') && landed.includes('state='), landed);
      await byId('signin-pkce-countdown').waitFor();
      await byId('signin-paste').fill(landed);
      await byId('signin-pkce-submit').click();
      await byId('signin-pkce-done').waitFor();
      assert.ok((await text(byId('signin-pkce-done'))).includes(email));
      await dialogShot(`${lang}-signin-pkce-done-375`, 'signin-pkce-done');
      // Pasting the same address again: the sign-in is used up, the reason shows inline.
      await byId('signin-paste').fill(landed);
      await byId('signin-pkce-submit').click();
      await byId('signin-pkce-error').waitFor();

      // Refused: the upstream's reason shows inline.
      await mockSignIn({ denied: 'missing_codex_entitlement' });
      await byId('signin-paste').fill('');
      const refused = await signInInNewTab();
      await byId('signin-paste').fill(refused);
      await byId('signin-pkce-submit').click();
      await byId('signin-pkce-reason').waitFor();
      assert.ok((await text(byId('signin-pkce-reason'))).includes('missing_codex_entitlement'));
      await dialogShot(`${lang}-signin-pkce-refused-375`, 'signin-pkce-error');
      await mockSignIn({ account_id: `signin-device-${lang.toLowerCase()}` });

      // Device code: the code, the link, a live countdown; cancel; then approved.
      await byId('signin-tab-device').click();
      await byId('signin-device-start').click();
      await byId('signin-device-code').waitFor();
      const code = await text(byId('signin-device-code'));
      assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{5}$/);
      assert.ok((await byId('signin-device-link').getAttribute('href')).endsWith('/codex/device'));
      const before = await text(byId('signin-device-countdown'));
      await eventually(async () => assert.notEqual(await text(byId('signin-device-countdown')), before, 'the countdown ticks'));
      await fitsWidth(`${lang} device tab`);
      await dialogShot(`${lang}-signin-device-375`, 'signin-device-status');
      await byId('signin-device-cancel').click();
      await byId('signin-device-cancelled').waitFor();
      await mockSignIn({ device_approve_after: 1 });
      await byId('signin-device-start').click();
      await byId('signin-device-done').waitFor({ timeout: 15_000 });
      await dialogShot(`${lang}-signin-device-done-375`, 'signin-device-done');
      await byId('dialog-close').first().click();
      await byId('signin-dialog').waitFor({ state: 'detached' });

      // Both accounts are in the list.
      await settled();
      await tokenRow(email).waitFor();
      await tokenRow(`signin-device-${lang.toLowerCase()}@example.com`).waitFor();
    }
  } finally {
    await setLang('en');
    await page.setViewportSize({ width: 1366, height: 768 });
    await context.unroute('http://localhost:1455/**');
  }
});

test('settings: a changed runtime setting is saved and kept after a reload', async () => {
  await clickNav('settings');
  const retries = byId('setting-max_retries');
  await retries.waitFor();
  const before = await adminGet('/settings');
  assert.equal(await retries.inputValue(), String(before.max_retries));
  assert.equal(await byId('settings-save').isDisabled(), true, 'nothing to save yet');
  const wanted = before.max_retries === 5 ? 4 : 5;
  await retries.fill(String(wanted));
  await byId('setting-strategy').selectOption('least_used');
  assert.equal(await byId('settings-save').isDisabled(), false);
  await byId('settings-save').click();
  await expectToast('success', DICT.en['settings.saved']);
  assert.equal(await byId('settings-save').isDisabled(), true);

  await page.reload();
  await byId('setting-max_retries').waitFor();
  assert.equal(await byId('setting-max_retries').inputValue(), String(wanted));
  assert.equal(await byId('setting-strategy').inputValue(), 'least_used');
  assert.equal(await byId('setting-strategy').locator('option[value="quota_aware"]').count(), 1);
  const after = await adminGet('/settings');
  assert.equal(after.max_retries, wanted);
  assert.equal(after.strategy, 'least_used');

  // A value the server refuses is explained in the form.
  await byId('setting-max_retries').fill('100000');
  await byId('settings-save').click();
  await byId('settings-error').waitFor({ state: 'visible' });
  assert.match(await text(byId('settings-error')), /max_retries/);
  await byId('settings-reset').click();
  assert.equal(await byId('setting-max_retries').inputValue(), String(wanted));

  // Every setting the server offers has a label in the console's words, not its JSON key.
  const labelled = [
    ['transient_cooldown_seconds', 'settings.transientCooldown'],
    ['forbidden_cooldown_seconds', 'settings.forbiddenCooldown'],
    ['quota_ceiling_percent', 'settings.ceiling'],
    ['affinity_ttl_seconds', 'settings.affinityTtl'],
    ['usage_probe_interval_seconds', 'settings.probeInterval'],
    ['refresh_wait_seconds', 'settings.refreshWait'],
    ['breaker_failures', 'settings.breakerFailures'],
    ['breaker_window_seconds', 'settings.breakerWindow'],
    ['breaker_open_seconds', 'settings.breakerOpen'],
  ];
  for (const [key, label] of labelled) {
    if (after[key] === undefined) continue;
    const legend = page.locator('fieldset', { has: byId(`setting-${key}`) }).locator('legend');
    assert.equal(await text(legend), DICT.en[label]);
    assert.equal(await byId(`setting-${key}`).inputValue(), String(after[key]));
  }

  // System information comes from the server.
  assert.match(await text(byId('system-version')), /^v\d+\.\d+\.\d+/);
  assert.equal(await text(byId('system-database')), 'SQLite');
  assert.ok((await text(byId('system-upstream'))).startsWith('http://127.0.0.1:'));
});

test('notifications: create a webhook (secret shown once), send a test, see it delivered', async () => {
  // A receiver for the deliveries, in this process.
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  try {
    await clickNav('settings');
    await byId('notifications-link').click();
    await page.waitForFunction(() => window.location.hash.startsWith('#/notifications') && document.querySelector('[data-testid="webhooks-table"]'));
    await settled();
    assert.equal(await page.locator('[data-testid="nav-settings"]').getAttribute('aria-current'), 'page', 'the Settings entry stays lit');

    // Create: a wrong address is explained in the form; then it is created.
    await byId('webhook-create').click();
    await byId('webhook-form-name').fill('e2e hook');
    await byId('webhook-form-url').fill('ftp://nowhere');
    await byId('webhook-event-key.limit_reached').uncheck();
    await byId('webhook-form-submit').click();
    await byId('webhook-form-error').waitFor({ state: 'visible' });
    assert.match(await text(byId('webhook-form-error')), /url/);
    await byId('webhook-form-url').fill(url);
    await byId('webhook-form-submit').click();
    await byId('new-secret-dialog').waitFor();
    const secret = await text(byId('new-secret-value'));
    assert.match(secret, /^whsec_[A-Za-z0-9]{32}$/);
    await byId('new-secret-copy').click();
    await expectToast('success', DICT.en['hooks.copied']);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    await byId('new-secret-done').click();
    const row = page.locator('[data-testid="webhook-row"][data-name="e2e hook"]');
    await row.waitFor();
    const listed = await adminGet('/webhooks');
    assert.ok(!JSON.stringify(listed).includes(secret), 'the secret is never listed');
    const hook = listed.data.find((w) => w.name === 'e2e hook');
    assert.ok(!hook.events.includes('key.limit_reached') && hook.events.includes('pool.exhausted'));

    // Send a test: the receiver gets it signed, and the deliveries show it delivered.
    await row.getByTestId('webhook-test').click();
    await expectToast('success', 'e2e hook');
    await eventually(() => assert.equal(received.length, 1));
    const [{ headers, body }] = received;
    const [t, v1] = headers['x-gpt2api-signature'].split(',').map((p) => p.split('=')[1]);
    assert.equal(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'), v1);
    assert.equal(JSON.parse(body).event, 'webhook.test');
    await byId('deliveries-card').waitFor();
    await eventually(async () => {
      await byId('deliveries-refresh').click();
      await settled();
      assert.equal(await page.locator('[data-testid="delivery-row"][data-status="delivered"]').count(), 1);
    });
    assert.equal(await text(page.locator('[data-testid="delivery-row"]').first().getByTestId('delivery-status')), DICT.en['hooks.status.delivered']);
    await shot('notifications-en');

    // Disable it.
    await row.getByTestId('webhook-toggle').click();
    await expectToast('success', 'e2e hook');
    assert.equal((await adminGet('/webhooks')).data.find((w) => w.name === 'e2e hook').is_enabled, false);
  } finally {
    server.close();
  }
});

test('keys: delete asks for confirmation, then the key stops working', async () => {
  await clickNav('keys');
  await keyRow(KEY_NAME).getByTestId('key-delete').click();
  await byId('confirm-dialog').waitFor();
  assert.match(await text(byId('confirm-dialog')), new RegExp(KEY_NAME));
  await byId('confirm-cancel').click();
  await byId('confirm-dialog').waitFor({ state: 'detached' });
  assert.equal(await keyRow(KEY_NAME).count(), 1, 'cancel keeps the key');
  assert.equal((await chat(state.key, 'still here?')).status, 200);
  state.successes += 1;

  await keyRow(KEY_NAME).getByTestId('key-delete').click();
  await byId('confirm-dialog').waitFor();
  await shot('en-keys-delete-confirm');
  await byId('confirm-ok').click();
  await expectToast('success');
  await keyRow(KEY_NAME).waitFor({ state: 'detached' });
  await byId('empty-state').waitFor();
  const gone = await chat(state.key, 'and now?');
  assert.equal(gone.status, 401, gone.body);
  assert.equal(gone.json.error.code, 'invalid_api_key');
});

test('password: change it, sign out, the old one is refused and the new one works', async () => {
  // A second browser, signed in before the change, on the keys page.
  const other = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-US', reducedMotion: 'reduce' });
  const otherPage = await other.newPage();
  otherPage.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  await otherPage.goto(`${CONSOLE}#/keys`);
  await otherPage.getByTestId('login-username').fill(ADMIN);
  await otherPage.getByTestId('login-password').fill(FIRST_PASSWORD);
  await otherPage.getByTestId('login-submit').click();
  await otherPage.waitForFunction(() => window.location.hash.startsWith('#/keys'));
  await otherPage.getByTestId('keys-tbody').waitFor();

  await clickNav('settings');
  await byId('cp-current').fill('wrong-current-1A');
  await byId('cp-new').fill(NEW_PASSWORD);
  await byId('cp-confirm').fill(NEW_PASSWORD);
  await byId('cp-submit').click();
  await byId('cp-error').waitFor({ state: 'visible' });
  assert.equal(await text(byId('cp-error')), DICT.en['password.wrongCurrent']);

  await byId('cp-current').fill(FIRST_PASSWORD);
  await byId('cp-new').fill('short');
  await byId('cp-confirm').fill('short');
  await byId('cp-submit').click();
  await eventually(async () => assert.ok((await text(byId('cp-error'))).length > 0));

  await byId('cp-current').fill(FIRST_PASSWORD);
  await byId('cp-new').fill(NEW_PASSWORD);
  await byId('cp-confirm').fill(NEW_PASSWORD);
  await byId('cp-submit').click();
  await expectToast('success', DICT.en['password.changed']);
  assert.equal(await byId('cp-current').inputValue(), '', 'the form is cleared');

  // The other session was revoked: its next action lands on the login page, which says why
  // and, once signed in again, returns to where that user was going.
  try {
    await otherPage.getByTestId('nav-tokens').click();
    await otherPage.waitForFunction(() => window.location.hash.startsWith('#/login'));
    await otherPage.getByTestId('login-expired').waitFor();
    assert.ok(decodeURIComponent(otherPage.url()).includes('next=#/tokens'), otherPage.url());
    await otherPage.getByTestId('login-username').fill(ADMIN);
    await otherPage.getByTestId('login-password').fill(NEW_PASSWORD);
    await otherPage.getByTestId('login-submit').click();
    await otherPage.waitForFunction(() => window.location.hash.startsWith('#/tokens'));
    await otherPage.getByTestId('tokens-table').waitFor();
  } finally {
    await other.close();
  }
  // This session is still signed in.
  await clickNav('keys');
  await clickNav('settings');

  await byId('logout-button').click();
  await byId('login-form').waitFor();
  await expectToast('info', DICT.en['login.loggedOut']);
  await signIn(FIRST_PASSWORD, false);
  assert.equal(await byId('login-error').getAttribute('data-code'), 'invalid_credentials');
  await signIn(NEW_PASSWORD);
  await byId('stat-cards').waitFor();
});

test('log out: the console is closed until the next sign-in, and returns where the user was', async () => {
  await clickNav('logs');
  await byId('logout-button').click();
  await byId('login-form').waitFor();
  assert.ok(page.url().includes('#/login'));
  const res = await page.request.get(`${BASE}/admin/profile`);
  assert.equal(res.status(), 401, 'the session is gone on the server too');

  // A page of the console asks for the sign-in first, then opens.
  await page.goto(`${CONSOLE}#/settings`);
  await page.waitForFunction(() => window.location.hash.startsWith('#/login'));
  assert.ok(decodeURIComponent(page.url()).includes('next=#/settings'), page.url());
  await shot('en-login-next');
  await setLang('zh-CN');
  await byId('login-form').waitFor();
  assert.equal(await text(byId('login-submit')), DICT['zh-CN']['login.submit']);
  await shot('zh-CN-login');
  await signIn('还是错的-Passw0rd', false);
  assert.equal(await text(byId('login-error-text')), DICT['zh-CN']['login.invalid']);
  await shot('zh-CN-login-error');
  await signIn(NEW_PASSWORD);
  await page.waitForFunction(() => window.location.hash.startsWith('#/settings'));
  await byId('settings-card').waitFor();
  await setLang('en');
  await byId('logout-button').click();
  await byId('login-form').waitFor();
});

test('the page raised no script error and opened no dialog', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(dialogs, []);
});
