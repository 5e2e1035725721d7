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

/** Screenshots of the current page at 1366 and 390 px, in both languages; back to en at 1366. */
async function shotsAt(name, ready) {
  try {
    for (const lang of LANGS) {
      await setLang(lang);
      for (const [width, height] of [[1366, 768], [390, 844]]) {
        await page.setViewportSize({ width, height });
        if (ready) await ready();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `${name} ${lang} at ${width}px is ${overflow}px wider than the screen`);
        await shot(`${lang}-${name}-${width}`);
      }
    }
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
    await setLang('en');
  }
}

/** Whether each first-run step is ticked, by name. */
async function firstRunTicks() {
  const out = {};
  for (const name of ['account', 'key', 'call']) out[name] = await byId(`first-run-step-${name}`).getAttribute('data-done');
  return out;
}

test('first run: an empty pool shows the checklist instead of "All accounts are healthy"', async () => {
  await go('dashboard');
  await byId('first-run').waitFor({ state: 'visible' });
  assert.deepEqual(await firstRunTicks(), { account: 'false', key: 'false', call: 'false' });
  assert.ok(await byId('first-run-needs').isVisible(), 'the test call waits for an account and a key');
  assert.equal(await byId('first-run-call-form').isVisible(), false);
  assert.equal(await byId('first-run-import').getAttribute('href'), '#/tokens?import=1');
  assert.equal(await byId('first-run-create-key').getAttribute('href'), '#/keys?create=1');
  await byId('attention-empty').waitFor();
  assert.equal(await byId('attention-none').count(), 0);
  assert.ok(!(await text(byId('main'))).includes(DICT.en['dashboard.allHealthy']));
  await shotsAt('first-run-empty', () => byId('first-run').waitFor({ state: 'visible' }));
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

  // Snippets for clients, each copyable, all with this key and this gateway's address.
  const snippet = async (id) => text(byId(`snippet-text-${id}`));
  assert.equal(await snippet('base-url'), `${BASE}/v1`);
  assert.ok((await snippet('curl')).includes(`curl ${BASE}/v1/chat/completions`) && (await snippet('curl')).includes(`Bearer ${key}`));
  assert.ok((await snippet('python')).includes(`OpenAI(base_url="${BASE}/v1", api_key="${key}")`));
  const codex = await byId('snippet-text-codex').textContent();
  for (const line of ['[model_providers.gpt2api]', `base_url = "${BASE}/v1"`, 'env_key = "GPT2API_KEY"', 'wire_api = "responses"', 'supports_websockets']) {
    assert.ok(codex.includes(line), `the Codex block has ${line}`);
  }
  assert.match(await text(byId('snippet-note-codex')), /supports_websockets/);
  for (const id of ['base-url', 'curl', 'python', 'codex']) {
    await byId(`snippet-copy-${id}`).click();
    await expectToast('success');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), await byId(`snippet-text-${id}`).textContent(), `${id} copied`);
  }

  // Esc, the close button and the backdrop ask before closing; "cancel" keeps the key on screen.
  const closers = [
    ['Escape', () => page.keyboard.press('Escape')],
    ['close button', () => dialog.getByTestId('dialog-close').click()],
    ['backdrop', () => page.mouse.click(5, 5)],
  ];
  for (const [how, close] of closers) {
    await close();
    await byId('confirm-dialog').waitFor();
    assert.equal(await text(byId('confirm-dialog').locator('h3')), DICT.en['keys.closeTitle'], how);
    await byId('confirm-cancel').click();
    await byId('confirm-dialog').waitFor({ state: 'detached' });
    assert.ok(await dialog.isVisible(), `${how}: still open after cancel`);
    assert.equal(await text(byId('new-key-value')), key);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await dialogShot('en-keys-new-key-390', 'new-key-snippets');
  await page.setViewportSize({ width: 1366, height: 768 });
  // Confirmed, it closes.
  await page.keyboard.press('Escape');
  await byId('confirm-dialog').waitFor();
  await shot('en-keys-new-key-confirm');
  await byId('confirm-ok').click();
  await dialog.waitFor({ state: 'detached' });

  const row = keyRow(KEY_NAME);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-active'), 'true');
  const masked = await text(row.getByTestId('key-masked'));
  assert.ok(masked.startsWith(key.slice(0, 5)) && masked.endsWith(key.slice(-4)), `masked ${masked}`);
  assert.ok(!masked.includes(key.slice(7, 30)), 'the list never shows the whole key');
  assert.equal(await text(row.getByTestId('key-minute-text')), '0 / 600');
  assert.equal(await text(row.getByTestId('key-today-text')), '0 / ∞');
  // Shown once: a reload does not bring the full key back.
  await page.reload();
  await keyRow(KEY_NAME).waitFor();
  assert.ok(!(await page.content()).includes(key));
});

test('first run: with an account and a key, the test call from the dashboard shows the answer', async () => {
  await clickNav('dashboard');
  await byId('first-run').waitFor({ state: 'visible' });
  await eventually(async () => assert.deepEqual(await firstRunTicks(), { account: 'true', key: 'true', call: 'false' }));
  await byId('first-run-call-form').waitFor({ state: 'visible' });
  await eventually(async () => assert.equal(await byId('first-run-key').locator('option').count(), 1));
  assert.match(await text(byId('first-run-key').locator('option')), new RegExp(KEY_NAME));
  await byId('first-run-model').selectOption('gpt-5');
  await byId('first-run-prompt').fill('ping from the checklist');
  await byId('first-run-send').click();
  await byId('first-run-answer').waitFor();
  state.successes += 1;
  // The mock answers with the upstream account's id and echoes the message.
  assert.match(await text(byId('first-run-answer-text')), /^Hello from \S+! You said: ping from the checklist$/);
  assert.deepEqual(await firstRunTicks(), { account: 'true', key: 'true', call: 'true' });
  await byId('first-run-all-done').waitFor({ state: 'visible' });
  await shotsAt('first-run-done', () => byId('first-run-answer').waitFor());
  // The call is the key's request, logged as coming from the console.
  await waitForLogs(1);
  const logs = await adminGet('/logs');
  assert.equal(logs.data[0].endpoint, '/admin/playground');
  assert.equal(logs.data[0].api_key_name, KEY_NAME);
  assert.equal(logs.data[0].status_code, 200);
  // Once everything was done, a later visit no longer shows the checklist.
  await byId('first-run-dismiss').click();
  assert.equal(await byId('first-run').isVisible(), false);
  await eventually(async () => assert.ok((await adminGet('/stats/overview')).requests.total >= 1));
  await page.reload();
  await byId('stat-cards').waitFor();
  await settled();
  await byId('stat-requests-value').waitFor();
  assert.equal(await byId('first-run').isVisible(), false);
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

test('keys: the list shows requests today and in the last minute against the limits, and links to the key\'s logs', async () => {
  const before = state.successes + state.errors;
  await waitForLogs(before);
  await go('keys');
  // Read afresh (the page may have been open since before the last request).
  await page.reload();
  await mounted('keys');
  const row = keyRow(KEY_NAME);
  // Every request of the key that went upstream counts (the refusal of the disabled key did not).
  assert.equal(await text(row.getByTestId('key-today-text')), `${before} / ∞`);
  const minute = Number(await row.getByTestId('key-minute').getAttribute('data-used'));
  assert.equal(await row.getByTestId('key-minute').getAttribute('data-limit'), '600');
  assert.ok(minute >= 1 && minute <= before, `last minute ${minute}`);
  assert.equal(await row.locator('[data-testid="key-minute"] progress').count(), 1, 'a bar against the limit');
  // One more request: the counters move.
  assert.equal((await chat(state.key, 'count me')).status, 200);
  state.successes += 1;
  await waitForLogs(before + 1);
  await page.reload();
  await keyRow(KEY_NAME).waitFor();
  assert.equal(await text(keyRow(KEY_NAME).getByTestId('key-today-text')), `${before + 1} / ∞`);
  assert.ok(Number(await keyRow(KEY_NAME).getByTestId('key-minute').getAttribute('data-used')) >= 1);

  // The allowed models are picked from the served ones; an unknown typed name is warned about.
  await keyRow(KEY_NAME).getByTestId('key-edit').click();
  await byId('key-dialog').waitFor();
  await eventually(async () => assert.ok((await byId('key-form-model-option').count()) >= 2));
  const offered = await byId('key-form-model-option').evaluateAll((els) => els.map((e) => e.dataset.model));
  assert.ok(offered.includes('gpt-5') && offered.includes('gpt-5-codex'), offered.join());
  assert.equal(await byId('key-form-models-warning').isVisible(), false);
  await byId('key-form-models').fill('gpt-5, not-a-served-model');
  await byId('key-form-models-warning').waitFor({ state: 'visible' });
  assert.match(await text(byId('key-form-models-warning')), /not-a-served-model/);
  assert.doesNotMatch(await text(byId('key-form-models-warning')), /gpt-5,/);
  await shot('en-keys-models-picker');
  await byId('key-form-cancel').click();
  await byId('key-dialog').waitFor({ state: 'detached' });

  // Phone: the rows are cards with the status, the counters and the actions in view.
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const card = keyRow(KEY_NAME);
    assert.equal(await card.evaluate((el) => getComputedStyle(el).display), 'block');
    for (const id of ['key-toggle-card', 'key-today', 'key-minute', 'key-logs', 'key-edit', 'key-delete']) {
      assert.ok(await card.getByTestId(id).isVisible(), `${id} visible on a phone`);
    }
    assert.equal(await card.getByTestId('key-toggle').isVisible(), false, 'the table column is folded away');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `keys page is ${overflow}px wider than the screen`);
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
  }
  await shotsAt('keys-counters', () => keyRow(KEY_NAME).getByTestId('key-today').waitFor());

  // "Logs of this key" opens the logs filtered by it.
  const id = await keyRow(KEY_NAME).getAttribute('data-id');
  await keyRow(KEY_NAME).getByTestId('key-logs').click();
  await page.waitForFunction(() => window.location.hash.startsWith('#/logs'));
  assert.ok(page.url().endsWith(`#/logs?api_key_id=${id}`), page.url());
  await mounted('logs');
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
    for (const chart of ['chart-requests', 'chart-tokens', 'chart-models', 'chart-accounts', 'chart-keys']) {
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
  // The per-key chart: every request was this key's.
  const byKey = await page.evaluate(() => {
    const c = window.Chart.getChart(document.querySelector('[data-testid="chart-keys-canvas"]'));
    return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]]));
  });
  assert.deepEqual(byKey, { [KEY_NAME]: total });
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

/** Runs `fn` at each width (1366 and 390 px) in each language, then restores 1366 px, English. */
async function acrossScreens(fn) {
  try {
    for (const width of [1366, 390]) {
      await page.setViewportSize({ width, height: width > 640 ? 768 : 844 });
      for (const lang of LANGS) await fn({ width, lang });
    }
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
    await setLang('en');
  }
}

test('logs: a request is found by its id and its upstream attempts are read', async () => {
  // A request whose content makes every account fail with a server error: after the second
  // account, the gateway stops retrying and answers the upstream's error.
  const res = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${state.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-5', messages: [{ role: 'user', content: 'poisoned [mock:failed]' }] }),
  });
  const body = await res.text();
  assert.equal(res.status, 500, body);
  assert.match(body, /two accounts in a row/);
  const requestId = res.headers.get('x-request-id');
  assert.ok(requestId, 'the answer carries its request id');
  state.errors += 1;
  await waitForLogs(state.successes + state.errors);
  const found = await adminGet(`/logs?request_id=${encodeURIComponent(requestId)}`);
  assert.equal(found.total, 1);
  const attempts = found.data[0].attempts;
  assert.ok(attempts.length >= 2, JSON.stringify(attempts));
  assert.equal(found.data[0].error_code, 'repeated_server_error');

  await acrossScreens(async ({ width, lang }) => {
    await go('logs');
    await setLang(lang);
    await byId('logs-search').fill(requestId);
    await byId('logs-search').press('Enter');
    await settled();
    await eventually(async () => assert.equal(await text(byId('logs-total')), '1'));
    assert.ok(page.url().includes(`request_id=${requestId}`), 'the search is in the address');
    const row = byId('log-row').first();
    assert.equal(await row.getAttribute('data-status'), 'error');
    // The error reads in the operator's language.
    assert.equal(await text(byId('log-error-snippet').first()), DICT[lang]['code.repeated_server_error'].replace('{status}', '500'));
    await byId('log-detail-button').first().click();
    await byId('log-detail-dialog').waitFor();
    assert.equal(await text(byId('log-request-id')), requestId);
    assert.equal(await byId('log-attempt').count(), attempts.length);
    const statuses = await byId('log-attempt').evaluateAll((items) => items.map((i) => i.dataset.status));
    assert.deepEqual(statuses, attempts.map((a) => String(a.status)));
    assert.ok(await byId('log-link-account').isVisible());
    assert.ok(await byId('log-request-id-copy').isVisible());
    await dialogShot(`${lang}-${width}-logs-request-trail`, 'log-attempts');
    if (width === 1366 && lang === 'en') {
      await byId('log-request-id-copy').click();
      await expectToast('success');
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), requestId);
      // The account's link opens the log of that account.
      await byId('log-link-account').click();
      await page.waitForFunction(() => window.location.hash.includes('token_id='));
      await byId('log-detail-dialog').waitFor({ state: 'detached' });
      await settled();
      assert.equal(await byId('logs-filter-account').inputValue(), String(found.data[0].token_id));
    } else {
      await page.keyboard.press('Escape');
      await byId('log-detail-dialog').waitFor({ state: 'detached' });
    }
  });
  // The CSV export follows the filters.
  await go('logs', `?request_id=${encodeURIComponent(requestId)}`);
  const href = await byId('logs-export').getAttribute('href');
  assert.ok(href.includes(`request_id=${requestId}`), href);
  const csv = await page.request.get(`${BASE}${href}`);
  assert.equal(csv.status(), 200);
  const lines = (await csv.text()).trim().split('\n');
  assert.equal(lines.length, 2, 'the header and the one request');
  assert.ok(lines[1].includes(requestId));
});

test('tokens: sorted by weekly use, three accounts are disabled at once', async () => {
  // Every account has had its usage windows read by now (the prober reads new accounts).
  await eventually(async () => {
    const list = await adminGet('/tokens?page_size=200');
    assert.ok(list.data.filter((x) => x.rate_limits && x.rate_limits.secondary_used_percent != null).length >= 3, 'windows known');
  }, 20_000);
  await go('tokens');
  await byId('tokens-sort').selectOption('secondary_used_percent');
  await settled();
  if ((await byId('tokens-order').getAttribute('data-order')) !== 'desc') {
    await byId('tokens-order').click();
    await settled();
  }
  assert.ok(page.url().includes('sort=secondary_used_percent') && page.url().includes('order=desc'));
  const percents = await byId('token-row').evaluateAll((rows) =>
    rows.map((r) => {
      const bar = r.querySelector('[data-testid="token-usage-secondary"]');
      return bar ? Number(bar.dataset.percent) : null;
    }),
  );
  const known = percents.filter((p) => p !== null);
  assert.deepEqual(known, [...known].sort((a, b) => b - a), `weekly use, highest first: ${percents}`);
  assert.deepEqual(percents.slice(0, known.length), known, 'accounts without windows come last');

  const rows = byId('token-row');
  const ids = [];
  for (let i = 0; i < 3; i += 1) {
    await rows.nth(i).getByTestId('token-select').check();
    ids.push(await rows.nth(i).getAttribute('data-id'));
  }
  assert.equal(await text(byId('tokens-bulk-count')), DICT.en['tokens.selected'].replace('{n}', '3'));
  await shot('en-1366-tokens-selection');
  await byId('tokens-bulk-disable').click();
  await byId('tokens-bulk-results').waitFor();
  const results = await byId('tokens-bulk-result').evaluateAll((items) => items.map((i) => [i.dataset.id, i.dataset.ok]));
  assert.deepEqual(results, ids.map((id) => [id, 'true']));
  await dialogShot('en-1366-tokens-bulk-results', 'tokens-bulk-results');
  await page.keyboard.press('Escape');
  await settled();
  for (const id of ids) {
    await eventually(async () => assert.equal(await page.locator(`[data-testid="token-row"][data-id="${id}"]`).getAttribute('data-status'), 'disabled'));
  }
  await acrossScreens(async ({ width, lang }) => {
    await go('tokens', '?sort=secondary_used_percent&order=desc');
    await setLang(lang);
    await byId('token-row').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the accounts page is ${overflow}px wider than the screen`);
    if (width < 640) {
      // Cards: the status, the usage bars and the actions are in view without scrolling sideways.
      const first = byId('token-row').first();
      for (const id of ['token-status', 'token-usage-secondary', 'token-toggle', 'token-details']) {
        const box = await first.getByTestId(id).first().boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= width, `${id} fits the card`);
      }
    }
    await shot(`${lang}-${width}-tokens-sorted`);
  });
  // Enabled again, for the rest of the visit.
  await go('tokens');
  for (const id of ids) await page.locator(`[data-testid="token-row"][data-id="${id}"]`).getByTestId('token-select').check();
  await byId('tokens-bulk-enable').click();
  await byId('tokens-bulk-results').waitFor();
  await page.keyboard.press('Escape');
  await byId('tokens-bulk-clear').click();
  await settled();
  for (const id of ids) {
    await eventually(async () => assert.notEqual(await page.locator(`[data-testid="token-row"][data-id="${id}"]`).getAttribute('data-status'), 'disabled'));
  }
});

test('tokens: the account drawer shows its requests, windows and last rows, and tests it', async () => {
  const list = await adminGet('/tokens?page_size=200&sort=usage_count&order=desc');
  const busiest = list.data[0];
  assert.ok(busiest.usage_count > 0, 'an account served requests');
  await acrossScreens(async ({ width, lang }) => {
    await go('tokens', '?sort=usage_count&order=desc');
    await setLang(lang);
    await page.locator(`[data-testid="token-row"][data-id="${busiest.id}"]`).getByTestId('token-details').click();
    await byId('token-drawer').waitFor();
    await byId('token-drawer-stats-24h').waitFor();
    assert.ok(page.url().includes(`detail=${busiest.id}`));
    const requests = await byId('token-drawer-stats-24h').locator('.stat-value').first().textContent();
    assert.ok(Number(requests.replace(/\D/g, '')) > 0, `requests over 24 h: ${requests}`);
    assert.ok((await byId('token-drawer-log').count()) > 0, 'its last requests');
    assert.ok((await byId('token-drawer-log').count()) <= 20);
    await byId('token-drawer-history').waitFor();
    if (width === 1366 && lang === 'en') {
      await byId('token-drawer-test').click();
      await expectToast('success', DICT.en['tokens.drawer.tested']);
      await settled();
      await byId('token-drawer-stats-24h').waitFor();
    }
    await dialogShot(`${lang}-${width}-tokens-drawer`, 'token-drawer-stats-7d');
    await page.keyboard.press('Escape');
    await byId('token-drawer').waitFor({ state: 'detached' });
  });
  // The drawer opens from its address, as the logs page links to it.
  await go('tokens', `?detail=${busiest.id}`);
  await byId('token-drawer').waitFor();
  assert.equal(await text(byId('token-drawer-title')), busiest.name || busiest.email);
  await page.keyboard.press('Escape');
  await byId('token-drawer').waitFor({ state: 'detached' });
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

test('naming: accounts are "Accounts" and token counts "LLM tokens"', async () => {
  await go('dashboard');
  assert.equal(await text(byId('nav-tokens')), 'Accounts');
  assert.match(await text(byId('stat-accounts')), /^Accounts/);
  assert.match(await text(byId('stat-tokens')), /^LLM tokens \(24 h\)/);
  await byId('chart-tokens').waitFor();
  assert.equal(await text(byId('chart-tokens').locator('h3')), 'LLM tokens');
  await go('tokens');
  assert.equal(await text(byId('page-title')), 'Accounts');
  // No heading, column, menu entry or button calls an account a "token".
  const labels = await page.locator('h1, h2, h3, th, [data-testid="nav"] a, button').evaluateAll((els) => els.map((e) => e.textContent.trim()));
  const wrong = labels.filter((l) => /^tokens?$/i.test(l));
  assert.deepEqual(wrong, []);
  // Chinese keeps its own words: 账号 for accounts, Token for token counts.
  await setLang('zh-CN');
  assert.equal(await text(byId('nav-tokens')), DICT['zh-CN']['nav.tokens']);
  assert.ok(DICT['zh-CN']['nav.tokens'].includes('账号') && DICT['zh-CN']['stats.tokens24h'].includes('Token'));
  await setLang('en');
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

// ---- several admins, TOTP, audit, CORS (each in its own browser context) -----------------------

/** A new browser context and page, signed in as `username` (through the form). */
async function signedInPage(username, password) {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-US', colorScheme: 'light', reducedMotion: 'reduce' });
  ctx.setDefaultTimeout(10_000);
  const p = await ctx.newPage();
  p.on('pageerror', (e) => pageErrors.push(String(e && e.message)));
  await p.goto(CONSOLE);
  await p.getByTestId('login-form').waitFor();
  await p.getByTestId('login-username').fill(username);
  await p.getByTestId('login-password').fill(password);
  await p.getByTestId('login-submit').click();
  return { ctx, p };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret at time step `step`. */
async function totp(secret, step) {
  const { createHmac } = await import('node:crypto');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => Number.parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

const nowStep = () => Math.floor(Date.now() / 1000 / 30);
const admins = {};

test('admins: an owner creates admins with one-time passwords, changes a role, disables and deletes', async () => {
  const { ctx, p } = await signedInPage(ADMIN, NEW_PASSWORD);
  admins.owner = { ctx, p };
  await p.getByTestId('shell').waitFor();
  await p.goto(`${CONSOLE}#/admins`);
  await p.getByTestId('admins-table').waitFor();
  for (const [name, role] of [['e2e-viewer', 'viewer'], ['e2e-operator', 'operator']]) {
    await p.getByTestId('admins-create-button').click();
    await p.getByTestId('admin-form-username').fill(name);
    await p.getByTestId('admin-form-role').selectOption(role);
    await p.getByTestId('admin-form-submit').click();
    const once = ((await p.getByTestId('admin-once-password').textContent()) || '').trim();
    assert.match(once, /^[A-Za-z0-9]{20}$/);
    admins[name] = once;
    await p.getByTestId('admin-once-done').click();
    await p.locator(`[data-testid="admin-row"][data-username="${name}"][data-role="${role}"]`).waitFor();
  }
  await p.screenshot({ path: join(ARTIFACTS, 'en-admins.png'), fullPage: true });
  // The operator becomes a viewer, then is deleted after a confirmation.
  const op = p.locator('[data-testid="admin-row"][data-username="e2e-operator"]');
  await op.getByTestId('admin-role').selectOption('viewer');
  await p.locator('[data-testid="admin-row"][data-username="e2e-operator"][data-role="viewer"]').waitFor();
  await p.locator('[data-testid="admin-row"][data-username="e2e-operator"]').getByTestId('admin-delete').click();
  await p.getByTestId('confirm-ok').click();
  await p.locator('[data-testid="admin-row"][data-username="e2e-operator"]').waitFor({ state: 'detached' });
  // The only owner cannot be demoted: the server refuses, the row stays an owner.
  const me = p.locator(`[data-testid="admin-row"][data-username="${ADMIN}"]`);
  await me.getByTestId('admin-role').selectOption('viewer');
  await p.locator('[data-testid="toast"][data-kind="error"]').first().waitFor();
  await p.locator(`[data-testid="admin-row"][data-username="${ADMIN}"][data-role="owner"]`).waitFor();
});

test('admins: a viewer changes the one-time password, sees no write buttons, and is shut out when disabled', async () => {
  const { ctx, p } = await signedInPage('e2e-viewer', admins['e2e-viewer']);
  await p.getByTestId('forced-password').waitFor();
  const password = 'Viewer-Passw0rd-e2e';
  await p.getByTestId('cp-current').fill(admins['e2e-viewer']);
  await p.getByTestId('cp-new').fill(password);
  await p.getByTestId('cp-confirm').fill(password);
  await p.getByTestId('cp-submit').click();
  await p.getByTestId('shell').waitFor();
  assert.equal(await p.getByTestId('nav-settings').count(), 0, 'no settings for a viewer');
  assert.equal(await p.getByTestId('nav-admins').count(), 0, 'no admins page for a viewer');
  await p.getByTestId('nav-keys').click();
  await p.getByTestId('keys-create-button').waitFor({ state: 'attached' });
  assert.equal(await p.getByTestId('keys-create-button').isVisible(), false, 'no create button');
  await p.getByTestId('nav-tokens').click();
  await p.getByTestId('tokens-signin').waitFor({ state: 'attached' });
  assert.equal(await p.getByTestId('tokens-signin').isVisible(), false, 'no sign-in button');
  assert.equal(await p.getByTestId('tokens-export').isVisible(), false, 'no export button');
  await p.screenshot({ path: join(ARTIFACTS, 'en-viewer-tokens.png'), fullPage: true });
  // The API refuses a viewer's change whatever the page shows.
  const res = await p.request.post(`${BASE}/admin/api-keys`, { data: { name: 'nope' }, headers: { origin: BASE } });
  assert.equal(res.status(), 403);
  // The audit page is readable by every role.
  await p.getByTestId('nav-audit').click();
  await p.locator('[data-testid="audit-row"][data-action="admin.create"]').first().waitFor();

  // Disabled by the owner: the next request of the viewer's session is refused.
  const owner = admins.owner.p;
  await owner.goto(`${CONSOLE}#/admins`);
  await owner.locator('[data-testid="admin-row"][data-username="e2e-viewer"]').getByTestId('admin-disable').click();
  await owner.locator('[data-testid="admin-row"][data-username="e2e-viewer"][data-disabled="true"]').waitFor();
  await p.getByTestId('nav-logs').click();
  await p.waitForFunction(() => window.location.hash.startsWith('#/login'));
  await ctx.close();
});

test('totp: enrolment with a locally drawn QR code, then sign-in with a computed code', async () => {
  const owner = admins.owner.p;
  await owner.goto(`${CONSOLE}#/account`);
  await owner.getByTestId('totp-setup').click();
  await owner.locator('[data-testid="totp-qr"] svg').waitFor();
  const secret = ((await owner.getByTestId('totp-secret').textContent()) || '').trim();
  assert.match(secret, /^[A-Z2-7]+=*$/);
  await owner.getByTestId('totp-code').fill(await totp(secret, nowStep()));
  await owner.getByTestId('totp-enable').click();
  const codes = owner.getByTestId('totp-recovery-codes').locator('li');
  await codes.first().waitFor();
  assert.equal(await codes.count(), 10);
  await owner.screenshot({ path: join(ARTIFACTS, 'en-account-totp.png'), fullPage: true });

  const { ctx, p } = await signedInPage(ADMIN, NEW_PASSWORD);
  await p.getByTestId('login-totp-form').waitFor();
  await p.getByTestId('login-totp-code').fill('000000' === (await totp(secret, nowStep() + 1)) ? '111111' : '000000');
  await p.getByTestId('login-totp-submit').click();
  await p.getByTestId('login-totp-error').waitFor({ state: 'visible' });
  // The next step's code (the current one was used to enable).
  await p.getByTestId('login-totp-code').fill(await totp(secret, nowStep() + 1));
  await p.getByTestId('login-totp-submit').click();
  await p.getByTestId('shell').waitFor();
  await ctx.close();

  // Turned off again with the password.
  await owner.getByTestId('totp-codes-done').click();
  await owner.getByTestId('totp-disable-input').fill(NEW_PASSWORD);
  await owner.getByTestId('totp-disable').click();
  await owner.locator('[data-testid="totp-status"][data-enabled="false"]').waitFor();
});

test('cors: a chat page served from another origin streams from /v1/chat/completions', async () => {
  const { createServer } = await import('node:http');
  const html = '<!doctype html><html><head><title>chat</title></head><body>chat</body></html>';
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  try {
    const created = await admins.owner.p.request.post(`${BASE}/admin/api-keys`, { data: { name: 'cors page' }, headers: { origin: BASE } });
    assert.equal(created.status(), 201);
    const key = (await created.json()).key;
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(origin);
    const out = await p.evaluate(
      async ({ base, key }) => {
        const res = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', session_id: 'browser-chat-1' },
          body: JSON.stringify({ model: 'gpt-5', stream: true, messages: [{ role: 'user', content: 'hello from a browser' }] }),
        });
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let text = '';
        let chunks = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks += 1;
          text += decoder.decode(value, { stream: true });
        }
        return { status: res.status, text, chunks, requestId: res.headers.get('x-request-id') };
      },
      { base: BASE, key },
    );
    assert.equal(out.status, 200);
    assert.match(out.text, /chat\.completion\.chunk/);
    assert.match(out.text, /data: \[DONE\]/);
    assert.ok(out.requestId, 'x-request-id is readable cross-origin');
    // The admin API stays same-origin: the browser refuses to let the page read it.
    const admin = await p.evaluate(async (base) => {
      try {
        await fetch(`${base}/admin/profile`);
        return 'readable';
      } catch {
        return 'blocked';
      }
    }, BASE);
    assert.equal(admin, 'blocked');
    await ctx.close();
  } finally {
    server.close();
    await admins.owner.ctx.close();
  }
});

test('the page raised no script error and opened no dialog', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(dialogs, []);
});
