/**
 * A scriptable OpenAI-compatible engine for the edge's upstream tests (workers/src/upstreams/): the
 * faults a real engine shows (5xx, 429, a stream cut after its first chunk) on demand, which the real
 * node cannot be made to show. An outside boundary, so a fake is fair; the healthy upstream in those
 * tests is the real node's own OpenAI endpoint.
 *
 * Base URL per backend: `{url}/{scenario}/{tag}/v1`, where tag keeps each test's counters apart.
 *   ok          200: a chat answer with reasoning_content, one tool call and usage (cached_tokens included)
 *   fail-503    always 503
 *   flaky-N     429 (Retry-After 0) for the first N requests, then as ok
 *   cut         200, one content chunk, then the body ends without finish_reason or [DONE]
 *   usage-vllm      as ok, with vLLM's usage: prompt_tokens_details null, completion_tokens_details.reasoning_tokens
 *   usage-deepseek  as ok, with DeepSeek's usage: prompt_cache_hit_tokens / prompt_cache_miss_tokens
 *   tool-loop   as ok, but a request whose last message is a tool result gets a plain text answer
 *               (FAKE_ANSWER.afterTool, finish_reason stop): the end of a tool round trip
 * GET {url}/requests/{tag} → the JSON bodies this tag received, in order (plus `_authorization`).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLocal } from './local-server.ts';

export interface FakeUpstream {
  url: string;
  stop(): Promise<void>;
}

/** What the fake "generates": fixed, so tests compare what the client got with what was sent. */
export const FAKE_ANSWER = {
  reasoning: 'The user wants weather.',
  content: 'Checking.',
  tool: { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
  usage: { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, prompt_tokens_details: { cached_tokens: 32 } },
  /** The tool-loop scenario's answer once the tool result came back. */
  afterTool: 'Sunny and 21 degrees in Paris.',
};

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => ok(s));
    req.on('error', fail);
  });
}

/** The same counts in the usage dialects engines speak. */
export const USAGE_DIALECTS: Record<string, Record<string, unknown>> = {
  ok: FAKE_ANSWER.usage,
  'usage-vllm': { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, prompt_tokens_details: null, completion_tokens_details: { reasoning_tokens: 5 } },
  'usage-deepseek': { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, prompt_cache_hit_tokens: 32, prompt_cache_miss_tokens: 8 },
};

function answer(res: ServerResponse, body: Record<string, unknown>, usage: Record<string, unknown>, afterTool = false): void {
  const base = { id: 'up-1', created: 1, model: String(body.model) };
  const { reasoning, content, tool } = FAKE_ANSWER;
  if (body.stream !== true) {
    const message = afterTool
      ? { role: 'assistant', content: FAKE_ANSWER.afterTool }
      : { role: 'assistant', content, reasoning_content: reasoning, tool_calls: [{ id: tool.id, type: 'function', function: { name: tool.name, arguments: tool.arguments } }] };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message, finish_reason: afterTool ? 'stop' : 'tool_calls' }], usage }));
    return;
  }
  const chunk = (delta: unknown, finish: string | null = null) => ({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });
  const events: unknown[] = afterTool
    ? [chunk({ role: 'assistant', content: '' }), chunk({ content: FAKE_ANSWER.afterTool }), chunk({}, 'stop')]
    : [
        chunk({ role: 'assistant', content: '' }),
        chunk({ reasoning_content: reasoning }),
        chunk({ content }),
        chunk({ tool_calls: [{ index: 0, id: tool.id, type: 'function', function: { name: tool.name, arguments: '' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: tool.arguments } }] }),
        chunk({}, 'tool_calls'),
      ];
  const wantsUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  if (wantsUsage) events.push({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const ev of events) res.write(`data: ${JSON.stringify(ev)}\n\n`);
  res.end('data: [DONE]\n\n');
}

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const received = new Map<string, unknown[]>();
  const server = createServer(async (req, res) => {
    const parts = (req.url ?? '').split('/').filter(Boolean);
    if (req.method === 'GET' && parts[0] === 'requests') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received.get(parts[1]) ?? []));
      return;
    }
    const [scenario, tag] = parts;
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    const seen = received.get(tag) ?? [];
    // The Authorization header rides along as `_authorization`, so tests can see which key was sent.
    seen.push({ ...body, _authorization: req.headers.authorization ?? null });
    received.set(tag, seen);
    const flaky = /^flaky-(\d+)$/.exec(scenario);
    if (scenario === 'fail-503') {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'engine overloaded', type: 'server_error' } }));
    } else if (flaky && seen.length <= Number(flaky[1])) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit_error' } }));
    } else if (scenario === 'cut') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ id: 'up-1', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [{ index: 0, delta: { role: 'assistant', content: 'Partial answer' }, finish_reason: null }] })}\n\n`);
      // Then the body ends: no finish_reason, no [DONE], as when an engine dies mid-answer behind a
      // proxy that closes cleanly. (A destroyed socket does the same to the edge, but workerd then
      // also reports the lost connection as an unhandled rejection, which fails a vitest run.)
      setTimeout(() => res.end(), 50);
    } else {
      const messages = Array.isArray(body.messages) ? (body.messages as { role?: unknown }[]) : [];
      const afterTool = scenario === 'tool-loop' && messages.at(-1)?.role === 'tool';
      answer(res, body, USAGE_DIALECTS[scenario] ?? FAKE_ANSWER.usage, afterTool);
    }
  });
  return listenLocal(server);
}
