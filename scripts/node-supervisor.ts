/**
 * Keeps a local GPU node running for `npm start`: when the node process dies (a crash, the kernel's
 * OOM killer, a kill -9), it is started again on the same port, so the edge's GPU_NODE_URLS stays
 * right. Restarts back off exponentially (1 s, 2 s, 4 s … 30 s) so a node that dies at once is not
 * respawned in a tight loop; a node that stayed up for a minute starts the count over. Meanwhile
 * the edge finds the node down (its load poll fails, its connect is refused) and answers 503 with
 * the OpenAI error shape, or uses another node of the pool.
 */
import type { LocalNode } from './local-node.ts';

export interface SupervisorOptions {
  /** Starts the node and resolves once it is ready (scripts/local-node.ts startLocalNode). */
  start(): Promise<LocalNode>;
  log?: (line: string) => void;
  /** First back-off and its ceiling, ms. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A node up at least this long resets the back-off, ms. */
  stableAfterMs?: number;
}

export interface SupervisedNode {
  /** The node running now (replaced on each restart). */
  readonly current: LocalNode;
  /** Restarts so far. */
  readonly restarts: number;
  /** Resolves once a node started after restart number `n` is ready. */
  restarted(n: number): Promise<LocalNode>;
  /** Stops supervising, then the node. */
  stop(): Promise<void>;
}

export async function superviseNode(options: SupervisorOptions): Promise<SupervisedNode> {
  const { start, log = () => {}, minBackoffMs = 1000, maxBackoffMs = 30_000, stableAfterMs = 60_000 } = options;
  let current = await start();
  let restarts = 0;
  let stopping = false;
  let backoffMs = minBackoffMs;
  const waiters: { n: number; resolve: (node: LocalNode) => void }[] = [];

  const watch = (node: LocalNode, startedAt: number) => {
    void node.exited.then(async (code) => {
      if (stopping) return;
      if (Date.now() - startedAt >= stableAfterMs) backoffMs = minBackoffMs;
      for (;;) {
        log(`GPU node (pid ${node.pid}) exited with ${code ?? 'a signal'}; restarting in ${backoffMs / 1000} s`);
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(maxBackoffMs, backoffMs * 2);
        if (stopping) return;
        try {
          current = await start();
        } catch (err) {
          log(`GPU node failed to start again: ${String(err).split('\n')[0]}`);
          continue;
        }
        restarts++;
        log(`GPU node restarted (pid ${current.pid}, restart ${restarts})`);
        for (const w of waiters.filter((w) => w.n <= restarts)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(current);
        }
        watch(current, Date.now());
        return;
      }
    });
  };
  watch(current, Date.now());

  return {
    get current() {
      return current;
    },
    get restarts() {
      return restarts;
    },
    restarted(n) {
      if (restarts >= n) return Promise.resolve(current);
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    async stop() {
      stopping = true;
      await current.stop();
    },
  };
}
