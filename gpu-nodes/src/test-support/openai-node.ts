/**
 * The real engine on k2-tiny behind the node's real HTTP server on an ephemeral port, with the
 * official openai client pointed at it: the fixture of the node's OpenAI-route tests. `thread`
 * runs the engine on its own worker thread, as `k2node serve` does; otherwise it runs in the test's
 * thread, where a test can reach into it.
 */
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { EngineThread } from '../engine-thread/engine-client.ts';
import type { Engine } from '../engine/engine.ts';
import { loadEngine } from '../engine/load-engine.ts';
import { selectKernels } from '../kernels/select.ts';
import { ensureModel } from '../model/make-model.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { createApp } from '../server.ts';

export const K2_TINY_DIR = fileURLToPath(new URL('../../../models/k2-tiny', import.meta.url));

export interface OpenAINode<E> {
  engine: E;
  tokenizer: Tokenizer;
  /** The node's OpenAI base URL, ending in /v1. */
  baseURL: string;
  client: OpenAI;
  stop(): Promise<void>;
}

export interface OpenAINodeOptions {
  apiKey: string;
  kvBlocks: number;
}

export function startOpenAINode(options: OpenAINodeOptions & { thread: true }): Promise<OpenAINode<EngineThread>>;
export function startOpenAINode(options: OpenAINodeOptions & { thread?: false }): Promise<OpenAINode<Engine>>;
export async function startOpenAINode({ apiKey, kvBlocks, thread = false }: OpenAINodeOptions & { thread?: boolean }): Promise<OpenAINode<Engine | EngineThread>> {
  ensureModel(K2_TINY_DIR, 'k2-tiny');
  const engine: Engine | EngineThread = thread
    ? await EngineThread.start({ modelDir: K2_TINY_DIR, backend: 'reference', engine: { kvBlocks }, quiet: true })
    : await loadEngine(K2_TINY_DIR, { kernels: await selectKernels({ backend: 'reference', log: () => {} }), kvBlocks, log: () => {} });
  const tokenizer = await loadTokenizer(K2_TINY_DIR);
  const app = createApp(() => engine, () => tokenizer, { auth: { secrets: [], apiKeys: [apiKey], insecureNoAuth: false } });
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((ok) => server.once('listening', ok));
  const baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return {
    engine,
    tokenizer,
    baseURL,
    client: new OpenAI({ apiKey, baseURL, maxRetries: 0 }),
    async stop() {
      await new Promise<void>((ok) => server.close(() => ok()));
      if (engine instanceof EngineThread) await engine.close();
    },
  };
}
