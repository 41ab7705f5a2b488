import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { type OpenAINode, startOpenAINode } from '../test-support/openai-node.ts';

// response_format on the real engine and HTTP server, through the official openai client. k2-tiny has
// random weights: left alone it writes noise, so an answer that parses and validates against its
// schema, every time, is the grammar mask at work.
let node: OpenAINode<Engine>;
let client: OpenAI;

beforeAll(async () => {
  node = await startOpenAINode({ apiKey: 'response-format-test-key', kvBlocks: 512 });
  ({ client } = node);
});

afterAll(() => node?.stop());

const messages = [{ role: 'user' as const, content: 'Describe a person as JSON.' }];

/** Schemas covering nested objects, arrays, enums, required and optional fields, integers and numbers. */
const schemas: Record<string, z.ZodType> = {
  nested: z.object({ person: z.object({ initial: z.enum(['A', 'B', 'C']), age: z.number().int().min(0).max(99) }), active: z.boolean() }),
  array: z.object({ colours: z.array(z.enum(['red', 'green', 'blue'])).min(1).max(3) }),
  enums: z.object({ status: z.enum(['open', 'closed', 'pending']), level: z.literal(3) }),
  numbers: z.object({ x: z.number().int().min(-5).max(5), ok: z.boolean().nullable() }),
  optional: z.object({ id: z.number().int().min(1).max(9), note: z.enum(['x', 'y']).optional() }),
};

const responseFormat = (name: string, schema: z.ZodType) =>
  ({ type: 'json_schema', json_schema: { name, schema: z.toJSONSchema(schema) as Record<string, unknown>, strict: true } }) as const;

async function streamedText(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<{ text: string; finish: string | null }> {
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  return { text, finish };
}

describe('response_format on the node', () => {
  it('every json_schema answer parses and validates, streamed and not, across seeds', async () => {
    const runs = Object.entries(schemas).flatMap(([name, schema]) =>
      [1, 2].map(async (seed) => {
        const body = { model: 'k2-tiny', messages, max_tokens: 64, temperature: 1, seed, response_format: responseFormat(name, schema) };
        const whole = await client.chat.completions.create(body);
        const streamed = await streamedText(await client.chat.completions.create({ ...body, stream: true }));
        return { name, schema, whole: { text: whole.choices[0].message.content ?? '', finish: whole.choices[0].finish_reason }, streamed };
      }),
    );
    for (const { name, schema, whole, streamed } of await Promise.all(runs)) {
      for (const answer of [whole, streamed]) {
        expect(answer.finish, `${name}: ${answer.text}`).toBe('stop');
        expect(schema.safeParse(JSON.parse(answer.text)).success, `${name}: ${answer.text}`).toBe(true);
      }
      // The same seed gives the same tokens whether streamed or not.
      expect(streamed.text).toBe(whole.text);
    }
  });

  it('json_object gives a JSON object', async () => {
    const res = await client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 48, temperature: 0, response_format: { type: 'json_object' } });
    const text = res.choices[0].message.content ?? '';
    // Unconstrained keys and strings may run past max_tokens on random weights; the prefix is still an object's.
    expect(text.startsWith('{')).toBe(true);
    if (res.choices[0].finish_reason === 'stop') expect(typeof JSON.parse(text)).toBe('object');
  });

  it('a schema cut by max_tokens mid-object is reported as length, not stop', async () => {
    const schema = z.object({ a: z.enum(['one', 'two']), b: z.enum(['three', 'four']), c: z.enum(['five', 'six']) });
    const body = { model: 'k2-tiny', messages, max_tokens: 3, temperature: 0, response_format: responseFormat('cut', schema) };
    const whole = await client.chat.completions.create(body);
    expect(whole.choices[0].finish_reason).toBe('length');
    expect(() => JSON.parse(whole.choices[0].message.content ?? '')).toThrow();
    expect(whole.choices[0].message.content!.startsWith('{"')).toBe(true);
    const streamed = await streamedText(await client.chat.completions.create({ ...body, stream: true }));
    expect(streamed).toEqual({ text: whole.choices[0].message.content, finish: 'length' });
  });

  it('an invalid schema is a 400 naming response_format, and the node still serves the next request', async () => {
    const bad = client.chat.completions.create({
      model: 'k2-tiny',
      messages,
      max_tokens: 4,
      response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 'object', properties: { x: { type: 'bogus' } } } } },
    });
    await expect(bad).rejects.toMatchObject({ status: 400, param: 'response_format' });
    const ok = await client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 32, temperature: 0, response_format: responseFormat('enums', schemas.enums) });
    expect(schemas.enums.safeParse(JSON.parse(ok.choices[0].message.content!)).success).toBe(true);
  });
});
