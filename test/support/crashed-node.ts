/**
 * A GPU node that died right after its load poll, as the edge sees it for up to the poll's cache
 * lifetime: `GET /v1/load` reports an idle node (the live node's own report with nothing running,
 * nothing queued and every KV block free, so routing puts it first), and every `POST /v1/generate`
 * connection is dropped before a response. A real node cannot be made to die between the poll and the
 * request on cue, so this server plays that moment; everything after it runs against the real node.
 *
 *   GET {url}/v1/load             the idle report
 *   POST {url}/v1/generate        socket destroyed (the edge's fetch fails as on a refused connect)
 *   GET {url}/generate-attempts   → { attempts }: how many generate connections it dropped so far
 */
import { createServer } from 'node:http';
import type { NodeLoad } from '../../shared/protocol.ts';
import { listenLocal } from './local-server.ts';

export interface CrashedNode {
  url: string;
  stop(): Promise<void>;
}

/** `liveLoad` reads the live node's load as the edge does (signed). */
export async function startCrashedNode(liveLoad: () => Promise<NodeLoad>): Promise<CrashedNode> {
  let attempts = 0;
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/v1/generate') {
      attempts++;
      req.socket.destroy();
      return;
    }
    if (req.method === 'GET' && req.url === '/generate-attempts') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ attempts }));
      return;
    }
    if (req.method === 'GET' && req.url === '/v1/load') {
      void liveLoad()
        .then((load) => {
          const idle: NodeLoad = { ...load, node_id: 'crashed', queue_depth: 0, running: 0, kv_blocks_free: load.kv_blocks_total };
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(idle));
        })
        .catch((err: unknown) => res.writeHead(503).end(String(err)));
      return;
    }
    res.writeHead(404).end();
  });
  return listenLocal(server);
}
