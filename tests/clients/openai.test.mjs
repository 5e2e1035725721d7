// openai-node (the official OpenAI JavaScript client) against the gateway: the Responses API
// with conversation state (previous_response_id), the stored-response endpoints, models, and
// OpenAI's documented function-calling flow. Run through run.sh (see support.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  MODEL,
  functionCalls,
  inputMessages,
  lastUpstreamRequest,
  lib,
  openaiClient,
} from './support.mjs';

const WEATHER_TOOL = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather in a city.',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
  strict: true,
};
const TOOL_RESULT = '22 degrees and sunny in Paris';

/** Asserts that a promise rejects with openai-node's NotFoundError (HTTP 404). */
async function rejectsNotFound(promise, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(
      err instanceof lib.NotFoundError,
      `${what}: expected NotFoundError, got ${err?.constructor?.name}: ${err?.message}`,
    );
    assert.equal(err.status, 404, what);
    return true;
  });
}

function assertAnswered(response, text) {
  assert.equal(response.object, 'response');
  assert.equal(response.status, 'completed', JSON.stringify(response));
  assert.ok(response.id, 'a response has an id');
  assert.ok(
    response.output_text.includes(`You said: ${text}`),
    `answer to ${JSON.stringify(text)}: ${JSON.stringify(response.output_text)}`,
  );
}

test('responses.create answers', async () => {
  const text = 'ping from openai-node';
  const response = await openaiClient().responses.create({ model: MODEL, input: text });
  assertAnswered(response, text);
  assert.ok(response.usage.input_tokens > 0);
  assert.ok(response.usage.output_tokens > 0);
});

test('previous_response_id: three turns; the upstream gets the whole conversation', async () => {
  const client = openaiClient();
  const first = await client.responses.create({ model: MODEL, input: 'one' });
  assertAnswered(first, 'one');
  const second = await client.responses.create({
    model: MODEL,
    input: 'two',
    previous_response_id: first.id,
  });
  assertAnswered(second, 'two');
  const third = await client.responses.create({
    model: MODEL,
    input: 'three',
    previous_response_id: second.id,
  });
  assertAnswered(third, 'three');

  // The Codex backend keeps no state: the gateway must send it the earlier turns itself.
  const { body } = await lastUpstreamRequest();
  assert.ok(
    !('previous_response_id' in body),
    `previous_response_id reached the upstream: ${JSON.stringify(body.previous_response_id)}`,
  );
  const conversation = inputMessages(body.input).filter(
    (m) => m.role === 'user' || m.role === 'assistant',
  );
  assert.deepEqual(conversation, [
    { role: 'user', text: 'one' },
    { role: 'assistant', text: first.output_text },
    { role: 'user', text: 'two' },
    { role: 'assistant', text: second.output_text },
    { role: 'user', text: 'three' },
  ]);
});

test('stored responses: retrieve, input items, delete, then 404', async () => {
  const client = openaiClient();
  const text = 'keep this answer';
  const created = await client.responses.create({ model: MODEL, input: text });
  assertAnswered(created, text);

  const stored = await client.responses.retrieve(created.id);
  assert.equal(stored.id, created.id);
  assert.equal(stored.status, 'completed');
  assert.deepEqual(stored.output, created.output);

  const items = [];
  for await (const item of client.responses.inputItems.list(created.id)) items.push(item);
  assert.deepEqual(inputMessages(items), [{ role: 'user', text }], JSON.stringify(items));
  assert.ok(items.every((item) => item.id), 'listed input items have ids');

  await client.responses.delete(created.id);
  await rejectsNotFound(client.responses.retrieve(created.id), 'retrieve after delete');
  await rejectsNotFound(client.responses.delete(created.id), 'second delete');
});

test('models.retrieve: a served model; an unknown one is NotFoundError', async () => {
  const client = openaiClient();
  const model = await client.models.retrieve(MODEL);
  assert.equal(model.id, MODEL);
  assert.equal(model.object, 'model');
  await rejectsNotFound(client.models.retrieve('no-such-model'), 'unknown model');
});

test('function calling: the tool output alone, with previous_response_id, gets the answer', async () => {
  const client = openaiClient();
  const tools = [WEATHER_TOOL];
  const first = await client.responses.create({
    model: MODEL,
    input: 'What is the weather in Paris? [mock:tool_call]',
    tools,
  });
  assert.equal(first.status, 'completed', JSON.stringify(first));
  const calls = functionCalls(first.output);
  assert.equal(calls.length, 1, JSON.stringify(first.output));
  const [call] = calls;
  assert.equal(call.name, 'get_weather');
  assert.ok(call.call_id, 'a function call has a call_id');
  assert.equal(typeof JSON.parse(call.arguments), 'object');

  // OpenAI's documented flow: only the tool's output, the rest comes from the stored response.
  const second = await client.responses.create({
    model: MODEL,
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: TOOL_RESULT }],
    tools,
  });
  assert.equal(second.status, 'completed', JSON.stringify(second));
  assert.deepEqual(functionCalls(second.output), []);
  assert.ok(
    second.output_text.includes(`Tool result: ${TOOL_RESULT}`),
    JSON.stringify(second.output_text),
  );
});
