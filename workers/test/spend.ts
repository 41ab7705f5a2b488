/** Spending credit in a test the way a finished request does, without running a model. */
import { env } from 'cloudflare:test';
import { recordUsage } from '../src/billing/ledger.ts';
import { resolveLimits } from '../src/billing/limits/plans.ts';
import { orgAccount } from '../src/billing/request-billing.ts';
import { database, priceAt } from '../src/db/queries.ts';

/**
 * The org's object admits and settles a request costing `micros` (what the meter does), then its
 * usage row and ledger debit are written by the usage queue's query: both stores move together,
 * so the org still reconciles. Returns what was charged.
 */
export async function spend(orgId: string, keyId: string, micros: number, modelId = 'k2-tiny'): Promise<number> {
  const requestId = `req_spend_${crypto.randomUUID()}`;
  const account = orgAccount(env, orgId);
  const limits = { org: resolveLimits(null), key: resolveLimits(null) };
  const admitted = await account.admit({ orgId, requestId, keyId, amountMicros: micros, tokens: 10, limits });
  if (!admitted.ok) throw new Error(`spend of ${micros} µ$ not admitted: ${admitted.error}`);
  const settled = await account.settle({ orgId, requestId, costMicros: micros, tokens: 10 });
  const now = Date.now();
  const price = (await priceAt(database(env.DB), modelId, now))!;
  await recordUsage(env.DB, {
    requestId,
    orgId,
    keyId,
    modelId,
    endpoint: 'chat.completions',
    promptTokens: 7,
    cachedTokens: 2,
    completionTokens: 3,
    priceId: price.id,
    costMicros: settled.chargedMicros,
    status: 'completed',
    finishReason: 'stop',
    startedAt: now - 10,
    finishedAt: now,
  });
  return settled.chargedMicros;
}
