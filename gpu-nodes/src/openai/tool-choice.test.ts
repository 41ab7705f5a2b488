import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { type OpenAINode, startOpenAINode } from '../test-support/openai-node.ts';

// tool_choice and parallel_tool_calls on the real engine through the openai client. k2-tiny's random
// weights almost never write K2's tool-call markers by themselves, so well-formed calls to the allowed
// functions with schema-valid arguments, on every seed, are the constraint at work.
let node: OpenAINode<Engine>;
let client: OpenAI;

beforeAll(async () => {
  node = await startOpenAINode({ apiKey: 'tool-choice-test-key', kvBlocks: 512 });
  ({ client } = node);
});

afterAll(() => node?.stop());

const weatherArgs = z.object({ city: z.enum(['Paris', 'Oslo']), days: z.number().int().min(1).max(3) });
const lookupArgs = z.object({ id: z.number().int().min(0).max(9) });
const argsOf: Record<string, z.ZodType> = { get_weather: weatherArgs, lookup: lookupArgs };
const tools: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', parameters: z.toJSONSchema(weatherArgs) as Record<string, unknown> } },
  { type: 'function', function: { name: 'lookup', parameters: z.toJSONSchema(lookupArgs) as Record<string, unknown> } },
];
const messages = [{ role: 'user' as const, content: 'What is the weather?' }];

function expectValidCalls(choice: OpenAI.ChatCompletion.Choice, allowed: string[]) {
  const calls = choice.message.tool_calls ?? [];
  expect(choice.finish_reason, JSON.stringify(choice.message)).toBe('tool_calls');
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) {
    if (call.type !== 'function') throw new Error(`unexpected call type ${call.type}`);
    expect(allowed).toContain(call.function.name);
    expect(argsOf[call.function.name].safeParse(JSON.parse(call.function.arguments)).success, call.function.arguments).toBe(true);
  }
  return calls;
}

describe('tool_choice on the node', () => {
  it('required: every answer is tool calls to the given functions with schema-valid arguments', async () => {
    const answers = await Promise.all([1, 2, 3].map((seed) => client.chat.completions.create({ model: 'k2-tiny', messages, tools, tool_choice: 'required', max_tokens: 80, temperature: 1, seed, parallel_tool_calls: false })));
    for (const a of answers) expect(expectValidCalls(a.choices[0], ['get_weather', 'lookup'])).toHaveLength(1);
  });

  it('a named function: only that function is called, once with parallel_tool_calls false, in sequence otherwise', async () => {
    const named = { model: 'k2-tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'lookup' } }, temperature: 1, seed: 9 } as const;
    const one = await client.chat.completions.create({ ...named, max_tokens: 80, parallel_tool_calls: false });
    expect(expectValidCalls(one.choices[0], ['lookup'])).toHaveLength(1);
    // Parallel calls allowed: the section may hold several calls, numbered in order, every one to lookup;
    // only a call cut by max_tokens may be incomplete.
    const many = await client.chat.completions.create({ ...named, max_tokens: 40 });
    const calls = many.choices[0].message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(1);
    calls.forEach((call, i) => {
      if (call.type !== 'function') throw new Error(`unexpected call type ${call.type}`);
      const complete = i < calls.length - 1 || many.choices[0].finish_reason === 'tool_calls';
      if (!complete) return expect(`functions.lookup:${i}`.startsWith(call.id)).toBe(true);
      expect(call.id).toBe(`functions.lookup:${i}`);
      expect(lookupArgs.safeParse(JSON.parse(call.function.arguments)).success).toBe(true);
    });
  });

  it('refuses what cannot be enforced, naming tool_choice', async () => {
    const unknown = client.chat.completions.create({ model: 'k2-tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } }, max_tokens: 4 });
    await expect(unknown).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
    const noTools = client.chat.completions.create({ model: 'k2-tiny', messages, tool_choice: 'required', max_tokens: 4 });
    await expect(noTools).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
  });
});
