/**
 * The GPU node's HTTP surface, speaking shared/protocol.ts: HTTP in, engine calls, HTTP out. All
 * scheduling, caching and generation live in engine/, which `k2node serve` runs on its own thread
 * (engine-thread/), so these routes answer while a step computes; this file only maps requests and errors.
 *
 *   POST /v1/generate  GenerateRequest → 200 NDJSON stream of NodeEvent (start, tokens…, finish|error)   signed
 *   POST /v1/cancel    CancelRequest   → {cancelled}; 403 unless it carries the request's cancel_key       signed
 *   GET  /v1/load      NodeLoad (for the edge's routing; `draining` while shutting down)                  signed
 *   POST /v1/chat/completions, /v1/completions (openai/)                                                bearer key
 *   GET  /health       {ok, version, ready}: liveness
 *   GET  /ready        200 when the model is loaded and the node is not draining, else 503: readiness
 *   GET  /metrics      Prometheus text (metrics.ts)
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { CancelRequest, GenerateRequest, NodeEvent } from '../../shared/protocol.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../shared/protocol.ts';
import { CancelKeys } from './cancel-keys.ts';
import { admitUnlessDraining, DrainState } from './drain.ts';
import { EngineError } from './engine/errors.ts';
import type { EngineHandle } from './engine-thread/engine-handle.ts';
import type { NodeMetrics } from './metrics.ts';
import { nodeErrorResponse as errorResponse } from './node-errors.ts';
import { openAIRoutes } from './openai/routes.ts';
import { requireApiKey, requireSignature, type NodeAuthConfig } from './request-auth.ts';
import { loggedSink } from './generation-log.ts';
import type { Tokenizer } from '../../shared/tokenizer/bpe.ts';

/**
 * Bodies are read whole before the signature check, so an unauthenticated caller must not be able
 * to make the node buffer more than this. A full-context prompt as token ids is ~1 MiB of JSON.
 */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** The routes that answer OpenAI clients, in OpenAI's error shape (openai/routes.ts). */
const OPENAI_PATHS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions']);

/**
 * 413 for a body over MAX_BODY_BYTES, in the shape of the route it was sent to. hono's bodyLimit
 * refuses on Content-Length at once and otherwise counts bytes as they are read, so a chunked body
 * is cut off at the limit too, never buffered whole.
 */
function bodyTooLarge(c: Context): Response {
  const message = `request body over ${MAX_BODY_BYTES} bytes`;
  if (OPENAI_PATHS.has(c.req.path)) {
    return c.json({ error: { message, type: 'invalid_request_error', param: null, code: 'request_too_large' } }, 413);
  }
  return errorResponse('invalid_request', 413, message);
}

/**
 * Rejects requests whose protocol header names another version, before the body is even read, so a
 * mismatched edge learns why in one round trip. A missing header is allowed (curl); bodies carry the
 * version too and are checked again at admission. Every answer carries our version in the header.
 *
 * @example
 * app.use(protocolVersion());
 */
export function protocolVersion(): MiddlewareHandler {
  return async function protocolVersion(c, next) {
    const sent = c.req.header(PROTOCOL_HEADER);
    if (sent !== undefined && sent !== String(PROTOCOL_VERSION)) {
      return errorResponse('protocol_mismatch', 400, `node speaks token-batch protocol v${PROTOCOL_VERSION}, edge sent ${PROTOCOL_HEADER}: ${sent}`);
    }
    await next();
    c.header(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
  };
}

/** What requireEngine sets on the context. */
export type EngineVariables = { engine: EngineHandle };

/**
 * Answers 503 not_ready (Retry-After 5) until the model has loaded and the engine exists; then sets
 * `engine` for the handlers.
 *
 * @example
 * app.use('/v1/*', requireEngine(() => engine));
 */
export function requireEngine(getEngine: () => EngineHandle | undefined): MiddlewareHandler<{ Variables: EngineVariables }> {
  return async function requireEngine(c, next) {
    const engine = getEngine();
    if (!engine) return errorResponse('not_ready', 503, 'model is still loading; retry shortly', { 'retry-after': '5' });
    c.set('engine', engine);
    await next();
  };
}

async function readJson<T>(req: { json(): Promise<unknown> }): Promise<T | Response> {
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    // The body is not JSON at all: say so instead of a generic 500.
    return errorResponse('invalid_request', 400, 'request body must be JSON');
  }
  // null, an array or a scalar would fail later on a property read, as a 500.
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return errorResponse('invalid_request', 400, 'request body must be a JSON object');
  return body as T;
}

/** NDJSON stream of one request's events; closing it from the client side cancels the request. */
async function generateStream(engine: EngineHandle, body: GenerateRequest, traceparent: string | undefined, cancelKeys: CancelKeys): Promise<Response> {
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      // The client went away (the edge aborted its fetch): free the sequence at the next step. The
      // stream is closed now, so later events (the cancelled finish) have nowhere to go: drop them.
      if (done) return;
      done = true;
      cancelKeys.close(body.request_id);
      void engine.cancel(body.request_id);
    },
  });
  const sink = (event: NodeEvent) => {
    if (done) return;
    controller.enqueue(encoder.encode(JSON.stringify(event) + '\n'));
    if (event.type === 'finish' || event.type === 'error') {
      done = true;
      cancelKeys.close(body.request_id);
      controller.close();
    }
  };
  await engine.submit(body, loggedSink(body, traceparent, engine.options.nodeId, sink)); // rejects with EngineError before any byte is streamed
  cancelKeys.open(body.request_id, body.cancel_key);
  return new Response(stream, {
    headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
  });
}

export interface NodeAppOptions {
  /** Who may call (request-auth.ts). */
  auth: NodeAuthConfig;
  /** Shared with cli/serve.ts, which sets it on SIGTERM. */
  drain?: DrainState;
  /** Served at /metrics when given. */
  metrics?: NodeMetrics;
}

/**
 * The node's app; `getEngine` returns undefined while the model is still loading. With
 * `getTokenizer` the node also answers OpenAI's /v1/chat/completions and /v1/completions (openai/).
 */
export function createApp(
  getEngine: () => EngineHandle | undefined,
  getTokenizer: (() => Tokenizer | undefined) | undefined,
  options: NodeAppOptions,
): Hono<{ Variables: EngineVariables }> {
  const { auth, drain = new DrainState(), metrics } = options;
  const app = new Hono<{ Variables: EngineVariables }>();
  const cancelKeys = new CancelKeys();
  app.use(protocolVersion());
  // Every route, including the ones that read no body today: the limit must not depend on each handler remembering it.
  app.use(bodyLimit({ maxSize: MAX_BODY_BYTES, onError: bodyTooLarge }));

  app.get('/health', (c) => c.json({ ok: true, version: PROTOCOL_VERSION, ready: getEngine() !== undefined }));
  app.get('/ready', (c) => {
    const ready = getEngine() !== undefined && !drain.draining;
    return c.json({ ready, draining: drain.draining }, ready ? 200 : 503);
  });
  if (metrics) {
    app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));
  }

  // Credentials before readiness, so an unauthenticated caller learns nothing, not even that the model is loading.
  const signed = requireSignature(auth);
  app.use('/v1/generate', signed);
  app.use('/v1/cancel', signed);
  app.use('/v1/load', signed);
  const keyed = requireApiKey(auth);
  app.use('/v1/chat/completions', keyed);
  app.use('/v1/completions', keyed);
  app.use('/v1/*', requireEngine(getEngine));
  const admit = admitUnlessDraining(drain);
  app.use('/v1/generate', admit);
  app.use('/v1/chat/completions', admit);
  app.use('/v1/completions', admit);

  app.get('/v1/load', (c) => c.json({ ...c.var.engine.load(), draining: drain.draining }));

  app.post('/v1/generate', async (c) => {
    const body = await readJson<GenerateRequest>(c.req);
    if (body instanceof Response) return body;
    return generateStream(c.var.engine, body, c.req.header('traceparent'), cancelKeys);
  });

  app.post('/v1/cancel', async (c) => {
    const body = await readJson<CancelRequest>(c.req);
    if (body instanceof Response) return body;
    if (body?.version !== PROTOCOL_VERSION) {
      return errorResponse('protocol_mismatch', 400, `node speaks token-batch protocol v${PROTOCOL_VERSION}, request has version ${String(body?.version)}`);
    }
    if (typeof body.request_id !== 'string') return errorResponse('invalid_request', 400, 'request_id must be a string');
    if (body.cancel_key !== undefined && typeof body.cancel_key !== 'string') return errorResponse('invalid_request', 400, 'cancel_key must be a string');
    const check = cancelKeys.check(body.request_id, body.cancel_key);
    if (check === 'unknown') return c.json({ cancelled: false });
    if (check === 'refused') return errorResponse('unauthorized', 403, 'cancel_key does not match the one this request was opened with; only the edge that opened a request can cancel it');
    return c.json({ cancelled: await c.var.engine.cancel(body.request_id) });
  });

  if (getTokenizer) app.route('/v1', openAIRoutes(getTokenizer));

  app.notFound(() => errorResponse('invalid_request', 404, 'no such endpoint; see shared/protocol.ts'));

  app.onError((err) => {
    if (err instanceof EngineError) {
      const headers: Record<string, string> = err.retryAfterS !== undefined ? { 'retry-after': String(err.retryAfterS) } : {};
      return errorResponse(err.code, err.status, err.message, headers, err.param);
    }
    console.error('node request failed', err);
    return errorResponse('internal_error', 500, 'internal error on the GPU node; see its log');
  });

  return app;
}
