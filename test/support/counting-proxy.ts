/**
 * A second URL for a real GPU node: an HTTP proxy that forwards every request to the node unchanged
 * (method, path, headers, body, streamed both ways, so signatures still verify) and counts them by
 * method and path. A test registers it as a node of its own and reads how often the edge called it.
 *
 *   {url}/…                any node route, forwarded
 *   GET {url}/proxy-hits   → { "GET /v1/load": n, … } since the proxy started
 */
import { createServer, request } from 'node:http';
import { listenLocal } from './local-server.ts';

export interface CountingProxy {
  url: string;
  stop(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const to = new URL(target);
  const hits: Record<string, number> = {};
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/proxy-hits') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(hits));
      return;
    }
    const key = `${req.method} ${req.url?.split('?')[0]}`;
    hits[key] = (hits[key] ?? 0) + 1;
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end());
    // The client went away: drop the upstream request too, as the node's own socket would see it.
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  return listenLocal(server);
}
