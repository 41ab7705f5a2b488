/**
 * A non-streamed request whose client hangs up mid-generation: the edge sees the disconnect (the
 * request's AbortSignal), cancels the generation on the node, and bills the tokens generated up to
 * the cancel. The pool's one node is the live node behind test/support/counting-proxy.ts, which
 * counts the edge's calls: the generate it forwarded and the cancel that stopped it.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { usageEvents } from '../../../shared/schema.ts';
import { database, priceAt } from '../../src/db/queries.ts';
import { costMicros } from '../../../shared/pricing.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, type Tenant } from '../fixtures.ts';

const CREDIT = 5_000_000;
let tenant: Tenant;

beforeAll(async () => {
  const res = await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('countingNodeUrl') });
  expect(res.status).toBe(201);
  tenant = await createTenant({ creditMicros: CREDIT });
});

const hits = async (route: string) => ((await (await fetch(`${inject('countingNodeUrl')}/proxy-hits`)).json()) as Record<string, number>)[route] ?? 0;

describe('non-streamed client that hangs up', () => {
  it('mid-generation: cancelled on the node, billed the tokens generated up to the cancel, books reconciled', async () => {
    const maxTokens = 1500;
    const [generatesBefore, cancelsBefore] = [await hits('POST /v1/generate'), await hits('POST /v1/cancel')];
    const hangUp = new AbortController();
    const answer = api('/completions', tenant.key, { model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: maxTokens, temperature: 0 }, { signal: hangUp.signal });
    answer.catch(() => undefined);
    // Hang up once the node has the request, and a little later, so some tokens exist.
    await eventually(async () => ((await hits('POST /v1/generate')) > generatesBefore ? true : undefined));
    await new Promise((r) => setTimeout(r, 1000));
    hangUp.abort();
    await expect(answer).rejects.toThrow();

    // The edge stopped the generation on the node.
    await eventually(async () => ((await hits('POST /v1/cancel')) > cancelsBefore ? true : undefined));
    const rows = await eventually(async () => {
      // A client that hung up never saw the x-request-id header: the org's rows name the request.
      const found = await database(env.DB).select().from(usageEvents).where(eq(usageEvents.orgId, tenant.orgId));
      return found.length > 0 ? found : undefined;
    });
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row.status).toBe('cancelled');
    // Billed what was generated up to the cancel: some tokens, far fewer than max_tokens.
    expect(row.completionTokens).toBeGreaterThan(0);
    expect(row.completionTokens).toBeLessThan(maxTokens / 2);
    const price = (await priceAt(database(env.DB), 'k2-tiny', row.startedAt))!;
    expect(row.costMicros).toBe(costMicros(price, row));
    expect(row.costMicros).toBeGreaterThan(0);
    const books = await expectReconciled(tenant.orgId);
    expect(books.ledger_micros).toBe(CREDIT - row.costMicros);
  }, 30_000);
});
