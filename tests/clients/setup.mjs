// Prepares a fresh gateway for the client tests, as an operator would: signs in as admin,
// imports the mock upstream's accounts and creates an API key, which it prints on stdout.
//
// Usage (run.sh does this): node setup.mjs <gateway url> <admin password> <accounts file>

import { readFileSync } from 'node:fs';

const [url, password, accountsFile] = process.argv.slice(2);
if (!url || !password || !accountsFile) {
  console.error('usage: node setup.mjs <gateway url> <admin password> <accounts file>');
  process.exit(2);
}

async function admin(method, path, body, token) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

const accounts = JSON.parse(readFileSync(accountsFile, 'utf8'));
const { token } = await admin('POST', '/admin/login', { username: 'admin', password });
const imported = await admin('POST', '/admin/tokens/import', accounts, token);
if (imported.failed.length !== 0 || imported.imported + imported.updated !== accounts.length) {
  throw new Error(`importing the mock's accounts: ${JSON.stringify(imported)}`);
}
const { key } = await admin('POST', '/admin/api-keys', { name: 'js-clients' }, token);
if (!key?.startsWith('sk-')) throw new Error(`unexpected API key: ${key}`);
process.stdout.write(`${key}\n`);
