// What workers/test/global-setup.ts (Node) hands to the workerd tests through provide()/inject().
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    nodeUrl: string;
    /** test/support/crashed-node.ts: healthy to the load poll, drops every generate connection. */
    crashedNodeUrl: string;
    /** test/support/counting-proxy.ts: the live node behind a proxy; GET {url}/proxy-hits counts what it forwarded. */
    countingNodeUrl: string;
    /** test/support/failing-node.ts: the live node, every generation ending in an engine error after a few tokens. */
    failingNodeUrl: string;
    /** test/support/failing-node.ts: the live node, every generation ending as cancelled on the node after a few tokens. */
    cancellingNodeUrl: string;
    /** test/support/fake-upstream.ts: OpenAI-compatible faults on demand. */
    fakeUpstreamUrl: string;
    /** test/support/fake-stripe.ts: api.stripe.com's checkout endpoint, for the Worker's Stripe SDK. */
    fakeStripeUrl: string;
  }
}
