// What the client tests share: the environment run.sh passes, the pinned client libraries, and
// a look at what the mock upstream received.
//
// Environment (set by run.sh): GPT2API_URL (the gateway's root URL), GPT2API_API_KEY (an sk- key
// of the gateway, with the mock's accounts imported), GPT2API_MOCK_ROOT_URL (the mock's root,
// for its /__mock/* control routes), CLIENTS_NODE_DIR (where deps.mjs sits next to the pinned
// node_modules).

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with tests/clients/run.sh`);
  return value;
}

export const GATEWAY_URL = env('GPT2API_URL').replace(/\/+$/, '');
export const API_KEY = env('GPT2API_API_KEY');
export const MOCK_ROOT_URL = env('GPT2API_MOCK_ROOT_URL').replace(/\/+$/, '');
export const MODEL = 'gpt-5';
export const TIMEOUT_MS = 30_000;

/** The client libraries: OpenAI, NotFoundError, generateText, streamText, tool, ... */
export const lib = await import(pathToFileURL(join(env('CLIENTS_NODE_DIR'), 'deps.mjs')).href);

/** An openai-node client for the gateway; no retries, so that a failure shows at once. */
export function openaiClient() {
  return new lib.OpenAI({
    baseURL: `${GATEWAY_URL}/v1`,
    apiKey: API_KEY,
    maxRetries: 0,
    timeout: TIMEOUT_MS,
  });
}

/**
 * The Vercel AI SDK's OpenAI provider for the gateway, with its defaults (Responses API). When
 * `sent` is an array, the JSON body of every request the provider makes is pushed onto it.
 */
export function aiSdkProvider(sent) {
  const settings = { baseURL: `${GATEWAY_URL}/v1`, apiKey: API_KEY };
  if (sent) {
    settings.fetch = (url, init) => {
      if (typeof init?.body === 'string') sent.push(JSON.parse(init.body));
      return fetch(url, init);
    };
  }
  return lib.createOpenAI(settings);
}

/**
 * The last request the mock upstream received, `{account_id, headers, body}`, from its control
 * route `GET /__mock/requests/last`.
 */
export async function lastUpstreamRequest() {
  const path = '/__mock/requests/last';
  const res = await fetch(`${MOCK_ROOT_URL}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  if (!res.ok) throw new Error(`the mock's GET ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** The text of a Responses message item: its string content, or its text parts joined. */
function messageText(item) {
  if (typeof item.content === 'string') return item.content;
  return (item.content ?? [])
    .filter((part) => typeof part.text === 'string')
    .map((part) => part.text)
    .join('');
}

/**
 * The messages of a Responses `input` (a string, or items) as `{role, text}`, in order; items
 * that are not messages (function calls, reasoning, ...) are left out.
 */
export function inputMessages(input) {
  if (typeof input === 'string') return [{ role: 'user', text: input }];
  return (input ?? [])
    .filter((item) => itemType(item) === 'message')
    .map((item) => ({ role: item.role, text: messageText(item) }));
}

/** The type of a Responses input item (an item with a role and no type is a message). */
export function itemType(item) {
  return item.type ?? ('role' in item ? 'message' : undefined);
}

/** The function calls of a Responses output (or input). */
export function functionCalls(items) {
  return (items ?? []).filter((item) => item.type === 'function_call');
}
