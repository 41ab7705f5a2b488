/**
 * GET /v1/key: what the calling key may do and has spent, for the key holder (any scope). Shaped
 * after OpenRouter's GET /api/v1/key: the budget with this period's spend and when it resets, the
 * models it may use, and its rate limits.
 */
import { Hono } from 'hono';
import { budgetWire } from '../billing/spend-controls.ts';
import { orgAccount } from '../billing/request-billing.ts';
import { cachedLimits } from '../db/read-cache.ts';
import type { AppEnv } from '../env.ts';

export const key = new Hono<AppEnv>().get('/', async (c) => {
  const { id, orgId, scopes } = c.var.apiKey;
  const limits = await cachedLimits(c.env, orgId, id);
  const budget = limits.budget ? budgetWire(await orgAccount(c.env, orgId).keyBudget(orgId, id, limits.budget)) : null;
  return c.json({
    object: 'key',
    id,
    org_id: orgId,
    scopes: [...scopes],
    budget,
    allowed_models: limits.allowedModels ?? null,
    limits: { rpm: limits.key.rpm, tpm: limits.key.tpm, tpd: limits.key.tpd ?? null, concurrency: limits.key.concurrency },
  });
});
