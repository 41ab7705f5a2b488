/**
 * Admin API for rate limits (mounted under /admin). A PUT replaces the settings: fields left out
 * or null fall back to the plan default. Answers show the limits in force after the change.
 *   PUT/GET /admin/organizations/:orgId/limits   { plan?, rpm?, tpm?, concurrency? }
 *   PUT/GET /admin/keys/:keyId/limits            { rpm?, tpm?, concurrency? }
 *   GET     /admin/organizations/:orgId/account  balance, open reservations, available credit
 */
import { Hono } from 'hono';
import { database, organizationExists } from '../db/queries.ts';
import { keyOrg, limitsFor, setKeyLimits, setOrgLimits } from '../billing/limits/limit-settings.ts';
import type { AppEnv } from '../env.ts';
import { NotFoundError } from '../errors.ts';
import * as schemas from '../schemas/limits.ts';
import { jsonBody } from '../schemas/validate.ts';

/** Limits are resolved per (org, key); for the org alone any key id that has no overrides will do. */
const NO_KEY = '';

export const limits = new Hono<AppEnv>()
  .put('/organizations/:orgId/limits', jsonBody(schemas.orgLimits), async (c) => {
    const orgId = c.req.param('orgId');
    if (!(await organizationExists(database(c.env.DB), orgId))) throw new NotFoundError(`organization '${orgId}'`);
    const { plan, ...overrides } = c.req.valid('json');
    await setOrgLimits(c.env.DB, orgId, plan ?? null, overrides);
    const effective = await limitsFor(c.env.DB, orgId, NO_KEY);
    return c.json({ org_id: orgId, plan: effective.plan, limits: effective.org });
  })

  .get('/organizations/:orgId/limits', async (c) => {
    const orgId = c.req.param('orgId');
    if (!(await organizationExists(database(c.env.DB), orgId))) throw new NotFoundError(`organization '${orgId}'`);
    const effective = await limitsFor(c.env.DB, orgId, NO_KEY);
    return c.json({ org_id: orgId, plan: effective.plan, limits: effective.org });
  })

  .put('/keys/:keyId/limits', jsonBody(schemas.keyLimits), async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await keyOrg(c.env.DB, keyId);
    if (!orgId) throw new NotFoundError(`key '${keyId}'`);
    await setKeyLimits(c.env.DB, keyId, c.req.valid('json'));
    return c.json({ key_id: keyId, org_id: orgId, limits: (await limitsFor(c.env.DB, orgId, keyId)).key });
  })

  .get('/keys/:keyId/limits', async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await keyOrg(c.env.DB, keyId);
    if (!orgId) throw new NotFoundError(`key '${keyId}'`);
    return c.json({ key_id: keyId, org_id: orgId, limits: (await limitsFor(c.env.DB, orgId, keyId)).key });
  })

  .get('/organizations/:orgId/account', async (c) => {
    const orgId = c.req.param('orgId');
    if (!(await organizationExists(database(c.env.DB), orgId))) throw new NotFoundError(`organization '${orgId}'`);
    const account = await c.env.ORG_ACCOUNT.get(c.env.ORG_ACCOUNT.idFromName(orgId)).account(orgId);
    return c.json({
      org_id: orgId,
      balance_micros: account.balanceMicros,
      reserved_micros: account.reservedMicros,
      available_micros: account.availableMicros,
      open_reservations: account.openReservations,
    });
  });
