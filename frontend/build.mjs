// Builds the console into dist/ (committed; the server binary embeds it).
//
//   dist/index.html
//   dist/assets/app.css            Tailwind + daisyUI, minified, used classes only
//   dist/assets/*.js               the ES modules from src/js, copied as they are
//   dist/assets/chart.umd.min.js   Chart.js, vendored from node_modules
//   dist/assets/uqr.js             uqr (QR codes), vendored from node_modules
//   dist/assets/i18n.<lang>.json   translations
//   dist/assets/favicon.svg
//
// The output must be byte-for-byte reproducible (CI rebuilds and diffs it):
// no timestamps, no content hashes, files written in a fixed order, every
// tool pinned by package-lock.json.

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const assets = join(dist, 'assets');
const require = createRequire(import.meta.url);

function fail(msg) {
  console.error(`build: ${msg}`);
  process.exit(1);
}

// ---- 1. check the translations ------------------------------------------
// Both dictionaries must have the same keys, and every literal key the code
// uses must exist, so no screen shows a raw key in either language.
const langs = readdirSync(join(src, 'i18n')).filter((f) => f.endsWith('.json')).sort();
const dicts = Object.fromEntries(langs.map((f) => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(src, 'i18n', f), 'utf8'))]));
if (!dicts.en) fail('src/i18n/en.json is missing');
const enKeys = Object.keys(dicts.en);
const namespaces = new Set(enKeys.map((k) => k.split('.')[0]));
for (const [lang, d] of Object.entries(dicts)) {
  const missing = enKeys.filter((k) => !(k in d));
  const extra = Object.keys(d).filter((k) => !(k in dicts.en));
  if (missing.length) fail(`i18n ${lang}: missing ${missing.join(', ')}`);
  if (extra.length) fail(`i18n ${lang}: unknown ${extra.join(', ')}`);
  for (const [k, v] of Object.entries(d)) if (typeof v !== 'string') fail(`i18n ${lang}: ${k} is not a string`);
}
const jsFiles = readdirSync(join(src, 'js')).filter((f) => f.endsWith('.js')).sort();
const unknown = new Set();
for (const f of jsFiles) {
  const code = readFileSync(join(src, 'js', f), 'utf8');
  for (const m of code.matchAll(/'([a-z][A-Za-z0-9]*)\.([A-Za-z0-9_.]+)'/g)) {
    const key = `${m[1]}.${m[2]}`;
    if (namespaces.has(m[1]) && !(key in dicts.en) && !key.endsWith('.js') && !key.endsWith('.json')) unknown.add(`${key} (${f})`);
  }
}
if (unknown.size) fail(`translation keys used but not defined: ${[...unknown].join(', ')}`);

// ---- 2. lay out dist/ -----------------------------------------------------
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

copyFileSync(join(src, 'index.html'), join(dist, 'index.html'));
copyFileSync(join(src, 'favicon.svg'), join(assets, 'favicon.svg'));
for (const f of jsFiles) copyFileSync(join(src, 'js', f), join(assets, f));
for (const [lang, d] of Object.entries(dicts)) writeFileSync(join(assets, `i18n.${lang}.json`), `${JSON.stringify(d)}\n`);
// chart.js does not export its UMD file as a subpath, so find it beside the main entry.
copyFileSync(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), join(assets, 'chart.umd.min.js'));
// uqr (QR codes for TOTP enrolment, drawn in the browser): its ES module as it is.
copyFileSync(join(dirname(require.resolve('uqr')), 'index.mjs'), join(assets, 'uqr.js'));

// ---- 3. CSS ---------------------------------------------------------------
const cli = join(dirname(require.resolve('@tailwindcss/cli/package.json')), 'dist', 'index.mjs');
execFileSync(process.execPath, [cli, '--input', join(src, 'app.css'), '--output', join(assets, 'app.css'), '--minify'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, NODE_ENV: 'production' },
});

const files = readdirSync(assets).sort();
console.log(`build: dist/index.html + ${files.length} assets: ${files.join(', ')}`);
