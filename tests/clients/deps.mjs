// The client libraries the tests use, re-exported from one place. run.sh copies this file next to
// the pinned node_modules (target/clients-node), so that node resolves the packages there with
// its own resolver and no node_modules folder lands in the work tree; support.mjs imports it.

export { default as OpenAI, NotFoundError } from 'openai';
export { generateText, isStepCount, streamText, tool } from 'ai';
export { createOpenAI } from '@ai-sdk/openai';
export { z } from 'zod';
