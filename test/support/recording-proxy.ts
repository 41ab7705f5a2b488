/**
 * A transparent HTTP proxy in front of a real GPU node that keeps a copy of every token-batch
 * generate body the edge sends: what the node learns about a request, as the node sees it. The
 * edge's signature covers method, path and body, never the host, so forwarded requests verify.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { GenerateRequest } from '../../shared/protocol.ts';
import { listenLocal } from './local-server.ts';

export interface RecordingProxy {
  url: string;
  /** Every /v1/generate body forwarded so far, in arrival order. */
  generated: GenerateRequest[];
  stop(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const generated: GenerateRequest[] = [];
  const forward = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    if (req.url === '/v1/generate') generated.push(JSON.parse(body.toString('utf8')) as GenerateRequest);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name === 'host' || name === 'content-length' || name === 'connection') continue;
      headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const abort = new AbortController();
    // The edge hung up: hang up on the node too, as a direct connection would.
    res.once('close', () => abort.abort());
    const upstream = await fetch(target + req.url, { method: req.method, headers, body: body.length > 0 ? body : undefined, signal: abort.signal });
    res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
    if (!upstream.body) return void res.end();
    Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream).on('error', () => res.destroy()).pipe(res);
  };
  const server = createServer((req, res) => {
    forward(req, res).catch(() => res.destroy());
  });
  return { ...(await listenLocal(server)), generated };
}
