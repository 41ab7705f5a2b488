/**
 * A real GPU node whose generations all end early: an HTTP proxy that forwards every request to the
 * live node unchanged (signatures still verify), and for `POST /v1/generate` passes the start event
 * and the first `tokenEvents` token events through, then ends the body as the node ends a generation
 * that stops early — `ending` 'error': the error event of a failed engine step; 'cancelled': the
 * finish event of a generation cancelled on the node — with usage counting the tokens sent, and drops
 * the connection to the live node, which stops that generation.
 *
 *   {url}/…                any node route, forwarded
 *   POST {url}/v1/generate start, tokenEvents token events, then the ending event
 */
import { createServer, request } from 'node:http';
import type { NodeEvent } from '../../shared/protocol.ts';
import { listenLocal } from './local-server.ts';

export interface FailingNode {
  url: string;
  stop(): Promise<void>;
}

export async function startFailingNode(target: string, ending: 'error' | 'cancelled' = 'error', tokenEvents = 3): Promise<FailingNode> {
  const to = new URL(target);
  const server = createServer((req, res) => {
    const generate = req.method === 'POST' && req.url === '/v1/generate';
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!generate || answer.statusCode !== 200) {
        answer.pipe(res);
        return;
      }
      const usage = { prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0 };
      let tokens = 0;
      let buffered = '';
      let failed = false;
      answer.setEncoding('utf8');
      answer.on('data', (chunk: string) => {
        buffered += chunk;
        for (let nl = buffered.indexOf('\n'); nl >= 0 && !failed; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl + 1);
          buffered = buffered.slice(nl + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line) as NodeEvent;
          if (event.type === 'start') {
            usage.prompt_tokens = event.prompt_tokens;
            usage.cached_tokens = event.cached_tokens;
          } else if (event.type === 'tokens') {
            usage.completion_tokens += event.token_ids.length;
            tokens++;
          }
          res.write(line);
          if (tokens >= tokenEvents) {
            failed = true;
            const last: NodeEvent =
              ending === 'error'
                ? { type: 'error', code: 'internal_error', message: 'engine step failed: injected by test/support/failing-node.ts', usage }
                : { type: 'finish', finish_reason: 'cancelled', usage };
            res.end(`${JSON.stringify(last)}\n`);
            upstream.destroy();
          }
        }
      });
      answer.on('end', () => res.end());
    });
    upstream.on('error', () => (res.headersSent ? res.end() : res.writeHead(502).end()));
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  return listenLocal(server);
}
