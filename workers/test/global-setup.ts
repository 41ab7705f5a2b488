/**
 * Runs in Node before the workerd tests: starts the GPU node and hands its URL to the tests
 * (`inject('nodeUrl')`), which register it through the admin API. Stopped after the run.
 */
import type { TestProject } from 'vitest/node';
import type {} from './provided-context.d.ts';
import { startCountingProxy } from '../../test/support/counting-proxy.ts';
import { startCrashedNode } from '../../test/support/crashed-node.ts';
import { startFailingNode } from '../../test/support/failing-node.ts';
import { startFakeStripe } from '../../test/support/fake-stripe.ts';
import { startFakeUpstream } from '../../test/support/fake-upstream.ts';
import { startTestNode, WORKERS_TEST_NODE_API_KEY, WORKERS_TEST_NODE_SECRET } from '../../test/support/test-node.ts';

// ProvidedContext (nodeUrl, crashedNodeUrl, countingNodeUrl, failingNodeUrl, cancellingNodeUrl, fakeUpstreamUrl, fakeStripeUrl) is declared in provided-context.d.ts, which both sides see.

export default async function setup(project: TestProject) {
  const node = await startTestNode({ secret: WORKERS_TEST_NODE_SECRET, apiKey: WORKERS_TEST_NODE_API_KEY });
  project.provide('nodeUrl', node.url);
  // A node that looks idle to the load poll but drops every generate: the edge's connect failover.
  const crashed = await startCrashedNode(() => node.load());
  project.provide('crashedNodeUrl', crashed.url);
  // The same live node under a second URL that counts the calls it forwards (the edge's load polls).
  const counting = await startCountingProxy(node.url);
  project.provide('countingNodeUrl', counting.url);
  // The same live node, its engine failing mid-generation: an error event after a few tokens.
  const failing = await startFailingNode(node.url);
  project.provide('failingNodeUrl', failing.url);
  // ...and every generation ending as cancelled on the node after a few tokens.
  const cancelling = await startFailingNode(node.url, 'cancelled');
  project.provide('cancellingNodeUrl', cancelling.url);
  // A scriptable OpenAI-compatible engine for the upstream failure tests (workers/src/upstreams/).
  const upstream = await startFakeUpstream();
  project.provide('fakeUpstreamUrl', upstream.url);
  // Stands in for api.stripe.com: the checkout tests point the Worker's Stripe SDK at it.
  const stripe = await startFakeStripe();
  project.provide('fakeStripeUrl', stripe.url);
  return async () => {
    await Promise.all([node.stop(), crashed.stop(), counting.stop(), failing.stop(), cancelling.stop(), upstream.stop(), stripe.stop()]);
  };
}
