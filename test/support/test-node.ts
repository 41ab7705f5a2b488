/**
 * The GPU node the tests talk to: the real one (`gpu-nodes/src/cli.ts serve models/k2-tiny`), a real
 * process with a real forward pass, on a free port.
 */
import { ensureTinyModel, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';

export type TestNode = LocalNode;

/**
 * The credentials of the node the workerd tests share (workers/test/global-setup.ts): vitest.config.ts
 * hands the same values to the worker as its NODE_SECRET and NODE_API_KEY bindings. Test-only values.
 */
export const WORKERS_TEST_NODE_SECRET = 'workers-test-node-secret';
export const WORKERS_TEST_NODE_API_KEY = 'workers-test-node-api-key';

export async function startTestNode(credentials: { secret?: string; apiKey?: string } = {}): Promise<TestNode> {
  await ensureTinyModel();
  // Small KV cache and batch: the tests send a handful of short requests.
  return startLocalNode({ extraArgs: ['--kv-blocks', '512'], ...credentials });
}
