// The Vercel AI SDK with its default OpenAI provider against the gateway. `openai(MODEL)` speaks
// the Responses API and, as it stores responses by default, points at earlier output with
// `item_reference` items instead of resending it: here the reasoning item of the first step
// (the `[mock:reasoning]` marker makes the mock reason). Multi-step tool use: the first step
// answers a function call, the SDK runs the tool and sends its output, the second step answers
// with text. Run through run.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MODEL, aiSdkProvider, itemType, lastUpstreamRequest, lib } from './support.mjs';

const { generateText, isStepCount, streamText, tool, z } = lib;

const TOOL_RESULT = '22 degrees and sunny in Paris';
const TOOL_PROMPT = 'What is the weather in Paris? [mock:tool_call] [mock:reasoning]';

/** A get_weather tool that counts its runs. */
function weatherTool() {
  const runs = [];
  const getWeather = tool({
    description: 'Current weather in a city.',
    inputSchema: z.object({ city: z.string() }),
    execute: async (input) => {
      runs.push(input);
      return TOOL_RESULT;
    },
  });
  return { runs, tools: { get_weather: getWeather } };
}

/**
 * Consumes a streamText result's full stream; returns the text and the stream's error parts
 * (the SDK reports a failed request there rather than by throwing).
 */
async function consume(result) {
  let text = '';
  const errors = [];
  for await (const part of result.fullStream) {
    if (part.type === 'text-delta') text += part.text;
    if (part.type === 'error') errors.push(part.error);
  }
  return { text, errors };
}

function describeErrors(errors) {
  return errors
    .map((e) => `${e?.name}: ${e?.message}${e?.responseBody ? ` ${e.responseBody}` : ''}`)
    .join('\n');
}

function assertToolSteps(steps, runs, text) {
  assert.equal(runs.length, 1, `the tool runs once: ${JSON.stringify(runs)}`);
  assert.equal(typeof runs[0].city, 'string');
  assert.equal(steps.length, 2, `steps: ${JSON.stringify(steps.map((s) => s.finishReason))}`);
  assert.equal(steps[0].toolCalls.length, 1);
  assert.equal(steps[0].toolCalls[0].toolName, 'get_weather');
  assert.equal(steps[0].toolResults.length, 1);
  assert.equal(steps[0].toolResults[0].output, TOOL_RESULT);
  assert.equal(steps[1].toolCalls.length, 0);
  // The mock answers a tool result with `Hello from <account>! Tool result: <output>`.
  assert.ok(text.includes(`Tool result: ${TOOL_RESULT}`), JSON.stringify(text));
}

test('streamText answers', async () => {
  const openai = aiSdkProvider();
  const prompt = 'ping from streamText';
  const result = streamText({ model: openai(MODEL), prompt, maxRetries: 0 });
  const { text, errors } = await consume(result);
  assert.deepEqual(errors, [], describeErrors(errors));
  assert.ok(text.includes(`You said: ${prompt}`), JSON.stringify(text));
  assert.equal(await result.text, text);
  assert.equal(await result.finishReason, 'stop');
  assert.equal((await result.steps).length, 1);
});

test('generateText answers', async () => {
  const openai = aiSdkProvider();
  const prompt = 'ping from generateText';
  const result = await generateText({ model: openai(MODEL), prompt, maxRetries: 0 });
  assert.ok(result.text.includes(`You said: ${prompt}`), JSON.stringify(result.text));
  assert.equal(result.finishReason, 'stop');
  assert.ok(result.usage.inputTokens > 0);
});

test('streamText with a tool: two steps, the tool runs once', async () => {
  const openai = aiSdkProvider();
  const { runs, tools } = weatherTool();
  const result = streamText({
    model: openai(MODEL),
    tools,
    stopWhen: isStepCount(3),
    prompt: TOOL_PROMPT,
    maxRetries: 0,
  });
  const { text, errors } = await consume(result);
  assert.deepEqual(errors, [], describeErrors(errors));
  const steps = await result.steps;
  assertToolSteps(steps, runs, await result.text);
  assert.ok(text.includes(`Tool result: ${TOOL_RESULT}`), JSON.stringify(text));
});

test('generateText with a tool: two steps, the tool runs once', async () => {
  const openai = aiSdkProvider();
  const { runs, tools } = weatherTool();
  const result = await generateText({
    model: openai(MODEL),
    tools,
    stopWhen: isStepCount(3),
    prompt: TOOL_PROMPT,
    maxRetries: 0,
  });
  assertToolSteps(result.steps, runs, result.text);
});

test('item_reference: the upstream gets the referenced item, not the reference', async () => {
  const sent = [];
  const openai = aiSdkProvider(sent);
  const { runs, tools } = weatherTool();
  const result = await generateText({
    model: openai(MODEL),
    tools,
    stopWhen: isStepCount(3),
    prompt: TOOL_PROMPT,
    maxRetries: 0,
  });
  assertToolSteps(result.steps, runs, result.text);

  // What the SDK sent for the second step: the reasoning item of the first as a reference.
  assert.equal(sent.length, 2);
  const references = sent[1].input.filter((item) => item.type === 'item_reference');
  assert.ok(references.length > 0, `no item_reference sent: ${JSON.stringify(sent[1].input)}`);

  // What the backend, which stores nothing, must get: the items themselves.
  const { body } = await lastUpstreamRequest();
  const types = body.input.map(itemType);
  assert.ok(!types.includes('item_reference'), `item_reference reached the upstream: ${types}`);
  assert.deepEqual(types, ['message', 'reasoning', 'function_call', 'function_call_output']);
});
