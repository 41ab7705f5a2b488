/**
 * The only code that talks to a GPU node (shared/protocol.ts): opens a generation and yields its
 * NDJSON events, cancels one, polls load, and maps the node's HTTP errors to our API errors.
 *
 * Every request is signed (shared/node-auth.ts) with its pool's secret, the value the pool's nodes
 * hold as K2NODE_SECRET: the Worker secret NODE_SECRET_<POOL> (pool id upper-cased, every other
 * character `_`; e.g. NODE_SECRET_KIMI_K2) when set, else NODE_SECRET. A node answers an unsigned
 * or wrongly signed request with 401.
 */
import { env } from 'cloudflare:workers';
import { signNodeRequest } from '../../shared/node-auth.ts';
import { NodeEventReader } from '../../shared/node-event-reader.ts';
import { requestContext, traceparent } from './observability/request-context.ts';
import {
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  type CancelRequest,
  type GenerateRequest,
  type NodeErrorBody,
  type NodeEvent,
  type NodeLoad,
} from '../../shared/protocol.ts';
import { ApiError, InvalidRequestError, OverloadedError, UpstreamUnavailableError } from './errors.ts';
import { tenantIds, type TenantIds } from './tenant-ids.ts';

/** The Worker secret holding `pool`'s signing secret, when the pool has its own. */
export function poolSecretName(pool: string): string {
  return `NODE_SECRET_${pool.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * The pool each node accepted a generation for, so a later cancel to that node is signed with the
 * same pool's secret. Bounded by the number of nodes; per isolate, like the cancel that follows.
 */
const poolOfNode = new Map<string, string>();

function secretFor(pool: string | undefined): string {
  const vars = env as unknown as Record<string, unknown>;
  const own = pool === undefined ? undefined : vars[poolSecretName(pool)];
  const secret = typeof own === 'string' && own !== '' ? own : vars.NODE_SECRET;
  if (typeof secret !== 'string' || secret === '') {
    throw new UpstreamUnavailableError('the edge has no NODE_SECRET to sign GPU node requests with; set it with `wrangler secret put NODE_SECRET`');
  }
  return secret;
}

/** The opaque tenant id and cache salt `pool`'s nodes see for `orgId` (tenant-ids.ts), keyed with the pool's secret. */
export function nodeTenantIds(pool: string, orgId: string): Promise<TenantIds> {
  return tenantIds(secretFor(pool), orgId);
}

/**
 * fetch() to a node with the signature headers. The secret is read from the Worker's env on each
 * call (a secret rotation reaches new requests without a redeploy of this code).
 */
async function nodeFetch(
  url: string,
  pool: string | undefined,
  init: { method: 'GET' | 'POST'; body?: string; headers?: Record<string, string>; signal?: AbortSignal },
): Promise<Response> {
  const secret = secretFor(pool);
  const path = new URL(url).pathname;
  const signature = await signNodeRequest({ method: init.method, path, body: init.body ?? '', secret });
  // The request's W3C trace, so the node's log line for it carries the same trace id.
  const context = requestContext.getStore();
  const trace: Record<string, string> = context ? { traceparent: traceparent(context.trace) } : {};
  return fetch(url, { ...init, headers: { ...init.headers, ...signature, ...trace, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) } });
}

/** The node's `GET /v1/load`, signed for `pool`; undefined when it is not ready (503) or otherwise refuses. */
export async function fetchNodeLoad(nodeUrl: string, pool: string | undefined, signal: AbortSignal): Promise<NodeLoad | undefined> {
  const res = await nodeFetch(`${nodeUrl}/v1/load`, pool, { method: 'GET', signal });
  if (!res.ok) {
    // 503 while the model loads, 401 when our secret is not the node's: not routable. Drain so the connection can be reused.
    if (res.status === 401) console.warn(`load poll of ${nodeUrl}: node refused our signature (NODE_SECRET differs from its K2NODE_SECRET?)`);
    await res.arrayBuffer();
    return undefined;
  }
  const load = (await res.json()) as NodeLoad;
  // A draining node finishes what it runs but takes nothing new: route as if it were down.
  return load.draining ? undefined : load;
}

export interface NodeGeneration {
  /** Base URL of the node that accepted the request (cancel goes to the same one). */
  nodeUrl: string;
  /** The request's cancel_key: only a cancel carrying it stops the generation. */
  cancelKey: string | undefined;
  /** Resolves to the next event, or undefined when the stream ended (or was closed). */
  events: { next(): Promise<NodeEvent | undefined> };
  /** Stops reading events (see NodeEventReader.close); pair it with cancelGeneration. */
  close(): void;
}

/**
 * How long (ms) a request may wait, over all the nodes tried, for a node to start it: a node accepts
 * a request into its queue at once, but a full batch can keep it there for minutes. Past this the
 * edge cancels it on the node and answers 429 with Retry-After (billed nothing: no token was made).
 * The Worker var NODE_START_WAIT_MS; 20 s when unset.
 */
export function nodeStartWaitMs(): number {
  const configured = Number(env.NODE_START_WAIT_MS);
  return Number.isFinite(configured) && configured > 0 ? configured : 20_000;
}

/**
 * POSTs the request to the first node in `urls` that accepts it and starts it within the wait bound
 * (nodeStartWaitMs). A node that is unreachable, full (429), not ready (503), breaks its stream
 * before starting, or keeps the request queued past the bound is skipped (the queued copy is
 * cancelled); a node that rejects the request itself (400/413) is final, since another node would
 * reject it too. `signal` aborts connecting (client went away); an open stream is ended with close().
 * Requests are signed with `pool`'s secret.
 */
export async function openGeneration(urls: string[], req: GenerateRequest, signal: AbortSignal, pool?: string): Promise<NodeGeneration> {
  if (urls.length === 0) throw new UpstreamUnavailableError('no GPU node is registered for this model');
  let lastError: ApiError = new UpstreamUnavailableError('no node answered');
  const waitMs = nodeStartWaitMs();
  const deadline = Date.now() + waitMs;
  for (const nodeUrl of urls) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    // One timer over connecting and the first event: a node may hold even its response headers
    // until it schedules the request. The fetch keeps the client's signal only, as an abort on its
    // own signal later would tear the body down under the reader.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waitOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), remaining);
    });
    const opening = (async () => {
      const res = await nodeFetch(`${nodeUrl}/v1/generate`, pool, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req), signal });
      if (!res.ok || !res.body) return { res, events: undefined };
      if (pool !== undefined) poolOfNode.set(nodeUrl, pool);
      const events = new NodeEventReader(res.body);
      try {
        await events.awaitFirst();
      } catch (err) {
        events.close();
        throw Object.assign(new Error(`${nodeUrl} broke its stream before starting the request`), { cause: err, streamBroke: true });
      }
      return { res, events };
    })();
    let opened: Awaited<typeof opening> | 'timeout';
    try {
      opened = await Promise.race([opening, waitOver]);
    } catch (err) {
      if (signal.aborted) {
        await cancelQuietly(nodeUrl, req);
        throw err;
      }
      if (err instanceof ApiError) throw err;
      const broke = err instanceof Error && 'streamBroke' in err;
      lastError = new UpstreamUnavailableError(broke ? err.message : `${nodeUrl} unreachable`);
      continue;
    } finally {
      clearTimeout(timer);
    }
    if (opened === 'timeout') {
      // Queued on the node past the bound: take it out rather than let it run for nobody, and let
      // the abandoned connection go (its body, if it ever comes, is closed unread).
      opening.then(({ events }) => events?.close(), () => {});
      await cancelQuietly(nodeUrl, req);
      lastError = new OverloadedError(Math.min(60, Math.max(1, Math.ceil(waitMs / 1000))));
      continue;
    }
    const { res, events } = opened;
    if (events) {
      const context = requestContext.getStore();
      if (context) context.nodeUrl = nodeUrl;
      const reader = events;
      return { nodeUrl, cancelKey: req.cancel_key, events: reader, close: () => reader.close() };
    }
    lastError = await nodeHttpError(res);
    if (!(lastError instanceof OverloadedError || lastError instanceof UpstreamUnavailableError)) throw lastError;
  }
  throw lastError;
}

/** Best effort: the node stops generating for `requestId` and finishes it with "cancelled". */
export async function cancelGeneration(nodeUrl: string, requestId: string, cancelKey: string | undefined, signal?: AbortSignal): Promise<void> {
  const body: CancelRequest = { version: PROTOCOL_VERSION, request_id: requestId, ...(cancelKey !== undefined ? { cancel_key: cancelKey } : {}) };
  const res = await nodeFetch(`${nodeUrl}/v1/cancel`, poolOfNode.get(nodeUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
  // Drain so workerd can reuse the connection.
  await res.arrayBuffer();
}

/**
 * Cancels a request we gave up waiting for (it may sit in the node's queue). Bounded, since the node
 * may be the reason we gave up; a node that never sees the cancel frees the request when the
 * connection drops.
 */
async function cancelQuietly(nodeUrl: string, req: GenerateRequest): Promise<void> {
  await cancelGeneration(nodeUrl, req.request_id, req.cancel_key, AbortSignal.timeout(2000)).catch((err: unknown) => {
    console.warn(`cancel ${req.request_id} on ${nodeUrl} after the start wait failed: ${String(err)}`);
  });
}

async function nodeHttpError(res: Response): Promise<ApiError> {
  const text = await res.text();
  let body: NodeErrorBody | undefined;
  try {
    body = JSON.parse(text) as NodeErrorBody;
  } catch {
    // Not our protocol's error body (a proxy page, a crash): report the status only.
  }
  const message = body?.error?.message ?? `HTTP ${res.status}`;
  switch (body?.error?.code) {
    case 'context_length_exceeded':
      return new InvalidRequestError(message, 'messages', 'context_length_exceeded');
    case 'invalid_request':
      return new InvalidRequestError(message, body.error.param ?? null);
    case 'queue_full':
      return new OverloadedError(Number(res.headers.get('retry-after')) || 1);
    default:
      return new UpstreamUnavailableError(`node answered ${res.status}: ${message}`);
  }
}
