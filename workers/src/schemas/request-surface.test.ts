/**
 * The request-surface rule, enumerated: every request field OpenAI documents (plus the vLLM/SGLang
 * sampling extensions and a vendor field we cannot know) is honoured by our node pool or refused
 * with a 400 naming it, and is forwarded unchanged to an OpenAI-compatible upstream. The field
 * lists here are written from OpenAI's API reference, not read from request-surface.ts, so a field
 * the table forgets fails the first test.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { k2TinyTokenizer, renderChat, type ChatMessage } from '../../../shared/tokenizer/index.ts';
import { adminFetch, api, createTenant, useTestNode, type Tenant } from '../../test/fixtures.ts';
import { CHAT_POOL_FIELDS, COMPLETION_POOL_FIELDS } from './request-surface.ts';

/** Each of OpenAI's chat-completions request fields with a value that asks for something. */
const OPENAI_CHAT_FIELDS: Record<string, unknown> = {
  audio: { voice: 'alloy', format: 'wav' },
  frequency_penalty: 0.5,
  function_call: 'auto',
  functions: [{ name: 'lookup', parameters: { type: 'object', properties: {} } }],
  logit_bias: { '100': 5 },
  logprobs: true,
  max_completion_tokens: 2,
  max_tokens: 2,
  metadata: { purpose: 'test' },
  modalities: ['text', 'audio'],
  n: 2,
  parallel_tool_calls: false,
  prediction: { type: 'content', content: 'Hello' },
  presence_penalty: 0.5,
  prompt_cache_key: 'surface-test',
  reasoning_effort: 'low',
  response_format: { type: 'json_object' },
  safety_identifier: 'user-1',
  seed: 7,
  service_tier: 'flex',
  stop: ['zz'],
  store: true,
  stream: true,
  stream_options: { include_usage: true },
  temperature: 0.5,
  tool_choice: 'required',
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
  top_logprobs: 3,
  top_p: 0.9,
  user: 'user-1',
  verbosity: 'low',
  web_search_options: { search_context_size: 'low' },
};

/** The legacy completions endpoint's own fields. */
const OPENAI_COMPLETION_FIELDS: Record<string, unknown> = {
  best_of: 2,
  echo: true,
  frequency_penalty: 0.5,
  logit_bias: { '100': 5 },
  logprobs: 2,
  max_tokens: 2,
  n: 2,
  presence_penalty: 0.5,
  seed: 7,
  stop: ['zz'],
  stream: true,
  stream_options: { include_usage: true },
  suffix: ' the end',
  temperature: 0.5,
  top_p: 0.9,
  user: 'user-1',
};

/** vLLM / SGLang sampling extensions, which the table lists too. */
const ENGINE_EXTENSIONS: Record<string, unknown> = { top_k: 5, min_p: 0.1, repetition_penalty: 1.1, min_tokens: 1 };
/** A vendor field no table can list: the pool refuses it, an upstream gets it. */
const VENDOR_FIELD = { chat_template_kwargs: { thinking: true } };

/** Fields the edge itself acts on before forwarding: the upstream model name, our reserved max_tokens, our usage request. */
const EDGE_REWRITES = new Set(['max_completion_tokens', 'stream_options']);

const messages = [{ role: 'user', content: 'Say hi.' }];
const partialMessages = [...messages, { role: 'assistant', content: 'Hi', partial: true }];

let tenant: Tenant;
beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant({ creditMicros: 50_000_000 });
});

describe('every field has a rule', () => {
  it('the pool tables classify each OpenAI field and engine extension', () => {
    for (const field of [...Object.keys(OPENAI_CHAT_FIELDS), ...Object.keys(ENGINE_EXTENSIONS), 'model', 'messages']) expect(CHAT_POOL_FIELDS, field).toHaveProperty(field);
    for (const field of [...Object.keys(OPENAI_COMPLETION_FIELDS), ...Object.keys(ENGINE_EXTENSIONS), 'model', 'prompt']) expect(COMPLETION_POOL_FIELDS, field).toHaveProperty(field);
  });
});

/** Sends one field to the pool and checks it was honoured (200) or refused naming itself (400). */
async function expectPoolHandles(path: string, base: Record<string, unknown>, field: string, value: unknown, honoured: boolean) {
  const res = await api(path, tenant.key, { ...base, [field]: value });
  const text = await res.text();
  if (honoured) {
    expect(res.status, `${field}: ${text}`).toBe(200);
  } else {
    expect(res.status, `${field}: ${text}`).toBe(400);
    const { error } = JSON.parse(text) as { error: { param: string; type: string; message: string } };
    expect(error.type).toBe('invalid_request_error');
    expect(error.param).toBe(field);
    expect(error.message).toContain(field);
  }
}

describe('served by our node pool: honoured or refused naming the field', () => {
  const chatBase = { model: 'k2-tiny', messages, max_tokens: 2 };
  // One real generation per honoured field, one after another (the first response_format also builds
  // the node's grammar vocabulary): longer than vitest's 5 s default on a busy machine.
  it('chat: every field', { timeout: 60_000 }, async () => {
    for (const [field, value] of Object.entries({ ...OPENAI_CHAT_FIELDS, ...ENGINE_EXTENSIONS, ...VENDOR_FIELD })) {
      // tool_choice names what to do with tools: without any it is a 400 of its own.
      const base = field === 'tool_choice' ? { ...chatBase, tools: OPENAI_CHAT_FIELDS.tools } : chatBase;
      await expectPoolHandles('/chat/completions', base, field, value, CHAT_POOL_FIELDS[field] === 'honoured');
    }
  });

  it('completions: every field', { timeout: 60_000 }, async () => {
    const base = { model: 'k2-tiny', prompt: 'Once upon', max_tokens: 2 };
    for (const [field, value] of Object.entries({ ...OPENAI_COMPLETION_FIELDS, ...ENGINE_EXTENSIONS, ...VENDOR_FIELD })) {
      await expectPoolHandles('/completions', base, field, value, COMPLETION_POOL_FIELDS[field] === 'honoured');
    }
  });

  it('neutral values ask for nothing and pass', async () => {
    const neutral = { n: 1, logprobs: false, top_logprobs: 0, response_format: { type: 'text' }, parallel_tool_calls: true, store: false, modalities: ['text'], tool_choice: 'auto', presence_penalty: 0, frequency_penalty: 0 };
    const res = await api('/chat/completions', tenant.key, { ...chatBase, ...neutral });
    expect(res.status, await res.clone().text()).toBe(200);
  });

  it('partial mode: the last assistant message is continued (partial: true or continue_final_message), never answered after', async () => {
    const usageOf = async (body: Record<string, unknown>) => {
      const res = await api('/chat/completions', tenant.key, { ...chatBase, ...body });
      expect(res.status, await res.clone().text()).toBe(200);
      return ((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    };
    const tokenizer = k2TinyTokenizer();
    const open = renderChat(tokenizer, partialMessages as ChatMessage[], { continueFinalMessage: true });
    // The open turn: no end marker after "Hi" and no new assistant header.
    expect(open.length).toBeLessThan(renderChat(tokenizer, partialMessages as ChatMessage[]).length);
    expect(await usageOf({ messages: partialMessages })).toBe(open.length);
    const plain = partialMessages.map(({ role, content }) => ({ role, content }));
    expect(await usageOf({ messages: plain, continue_final_message: true })).toBe(open.length);
    const refusedParam = async (body: Record<string, unknown>) => {
      const res = await api('/chat/completions', tenant.key, { ...chatBase, ...body });
      expect(res.status).toBe(400);
      return ((await res.json()) as { error: { param: string } }).error.param;
    };
    expect(await refusedParam({ messages: [{ role: 'user', content: 'Say hi.', partial: true }, { role: 'assistant', content: 'Hi' }] })).toBe('messages.0.partial');
    expect(await refusedParam({ messages, continue_final_message: true })).toBe('continue_final_message');
  });

  it('a pool backend refuses the same way', async () => {
    await setBackends('k2-tiny', [{ name: 'pool', kind: 'pool', pool: 'k2-tiny', priority: 0 }]);
    try {
      const res = await api('/chat/completions', tenant.key, { ...chatBase, n: 9 });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe('n');
    } finally {
      await setBackends('k2-tiny', []);
    }
  });
});

describe('honoured by the node: the sampler acts on the field', () => {
  it('logit_bias forces a token through the real forward pass; an id outside the vocabulary is refused naming logit_bias', async () => {
    const tokenizer = k2TinyTokenizer();
    const [id] = tokenizer.encode(' river');
    const res = await api('/completions', tenant.key, { model: 'k2-tiny', prompt: 'Once upon', max_tokens: 3, temperature: 0, logit_bias: { [id]: 100 } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: { text: string }[] }).choices[0].text).toBe(' river river river');
    const bad = await api('/completions', tenant.key, { model: 'k2-tiny', prompt: 'Once upon', max_tokens: 3, logit_bias: { [tokenizer.vocabSize]: 1 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('logit_bias');
  });
});

async function setBackends(model: string, list: Record<string, unknown>[]) {
  const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
  for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
  for (const b of list) {
    const res = await adminFetch(`/models/${model}/backends`, b);
    if (res.status !== 201) throw new Error(`adding backend: ${res.status} ${await res.text()}`);
  }
}

describe('served by an OpenAI-compatible upstream: forwarded unchanged', () => {
  const tag = `surface${Date.now().toString(36)}`;
  const received = async () => (await (await fetch(`${inject('fakeUpstreamUrl')}/requests/${tag}`)).json()) as Record<string, unknown>[];
  beforeAll(async () => {
    await setBackends('kimi-k2-instruct', [{ name: 'up', kind: 'openai', base_url: `${inject('fakeUpstreamUrl')}/ok/${tag}/v1`, upstream_model: 'served-name', priority: 0 }]);
  });

  it('chat: every field, message-level fields and a vendor field arrive as sent', async () => {
    const fields = { ...OPENAI_CHAT_FIELDS, ...ENGINE_EXTENSIONS, ...VENDOR_FIELD };
    for (const [field, value] of Object.entries(fields)) {
      const res = await api('/chat/completions', tenant.key, { model: 'kimi-k2-instruct', messages: partialMessages, max_tokens: 8, [field]: value });
      expect(res.status, `${field}: ${await res.clone().text()}`).toBe(200);
      await res.text();
      const sent = (await received()).at(-1)!;
      expect(sent.model).toBe('served-name');
      expect(sent.messages, field).toEqual(partialMessages);
      if (EDGE_REWRITES.has(field)) expect(sent.max_tokens, field).toBeTypeOf('number');
      else expect(sent[field], field).toEqual(value);
    }
  });

  it('completions: every field arrives as sent', async () => {
    for (const [field, value] of Object.entries({ ...OPENAI_COMPLETION_FIELDS, ...ENGINE_EXTENSIONS, ...VENDOR_FIELD })) {
      const res = await api('/completions', tenant.key, { model: 'kimi-k2-instruct', prompt: 'Once upon', [field]: value });
      expect(res.status, `${field}: ${await res.clone().text()}`).toBe(200);
      await res.text();
      const sent = (await received()).at(-1)!;
      if (EDGE_REWRITES.has(field)) expect(sent.max_tokens, field).toBeTypeOf('number');
      else expect(sent[field], field).toEqual(value);
    }
  });
});
