/**
 * Admin API for spend control (mounted under /admin):
 *   GET/PUT/DELETE /keys/:keyId/budget            { limit_micros, period, time_zone? }
 *   GET/PUT        /keys/:keyId/allowed-models    { models: [...] | null }
 *   GET/PUT/DELETE /organizations/:orgId/alerts   { webhook_url, balance_below_micros?, key_budget_percent?, rotate_secret? }
 *   GET            /organizations/:orgId/alerts/events   the org's alerts, newest first, with delivery outcome
 * Answers show the key's budget with its current period's spend, or the alert settings in force.
 */
import { Hono } from 'hono';
import { deleteAlertSettings, recentAlertEvents } from '../billing/alerts/alert-settings.ts';
import { keyOrg } from '../billing/limits/limit-settings.ts';
import { alertEventWire, changeAlertSettings, changeAllowedModels, changeKeyBudget, keyControls, readAlertSettings } from '../billing/spend-controls.ts';
import { database, organizationExists } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { NotFoundError } from '../errors.ts';
import * as schemas from '../schemas/spend-controls.ts';
import { jsonBody } from '../schemas/validate.ts';

async function orgOfKey(db: D1Database, keyId: string): Promise<string> {
  const orgId = await keyOrg(db, keyId);
  if (!orgId) throw new NotFoundError(`key '${keyId}'`);
  return orgId;
}

async function existingOrg(db: D1Database, orgId: string): Promise<string> {
  if (!(await organizationExists(database(db), orgId))) throw new NotFoundError(`organization '${orgId}'`);
  return orgId;
}

export const spendControls = new Hono<AppEnv>()
  .get('/keys/:keyId/budget', async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await orgOfKey(c.env.DB, keyId);
    const controls = (await keyControls(c.env, [{ id: keyId, orgId }])).get(keyId)!;
    return c.json({ key_id: keyId, org_id: orgId, budget: controls.budget });
  })

  .put('/keys/:keyId/budget', jsonBody(schemas.keyBudget), async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await orgOfKey(c.env.DB, keyId);
    const b = c.req.valid('json');
    const controls = await changeKeyBudget(c.env, orgId, keyId, { limitMicros: b.limit_micros, period: b.period, timeZone: b.time_zone });
    return c.json({ key_id: keyId, org_id: orgId, budget: controls.budget });
  })

  .delete('/keys/:keyId/budget', async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await orgOfKey(c.env.DB, keyId);
    await changeKeyBudget(c.env, orgId, keyId, null);
    return c.json({ key_id: keyId, org_id: orgId, budget: null });
  })

  .get('/keys/:keyId/allowed-models', async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await orgOfKey(c.env.DB, keyId);
    const controls = (await keyControls(c.env, [{ id: keyId, orgId }])).get(keyId)!;
    return c.json({ key_id: keyId, org_id: orgId, allowed_models: controls.allowed_models });
  })

  .put('/keys/:keyId/allowed-models', jsonBody(schemas.allowedModels), async (c) => {
    const keyId = c.req.param('keyId');
    const orgId = await orgOfKey(c.env.DB, keyId);
    const controls = await changeAllowedModels(c.env, orgId, keyId, c.req.valid('json').models);
    return c.json({ key_id: keyId, org_id: orgId, allowed_models: controls.allowed_models });
  })

  .get('/organizations/:orgId/alerts', async (c) => {
    const orgId = await existingOrg(c.env.DB, c.req.param('orgId'));
    return c.json({ org_id: orgId, ...(await readAlertSettings(c.env, orgId)) });
  })

  .put('/organizations/:orgId/alerts', jsonBody(schemas.alertSettings), async (c) => {
    const orgId = await existingOrg(c.env.DB, c.req.param('orgId'));
    return c.json({ org_id: orgId, ...(await changeAlertSettings(c.env, orgId, c.req.valid('json'))) });
  })

  .delete('/organizations/:orgId/alerts', async (c) => {
    const orgId = await existingOrg(c.env.DB, c.req.param('orgId'));
    await deleteAlertSettings(c.env.DB, orgId);
    return c.json({ org_id: orgId, ...(await readAlertSettings(c.env, orgId)) });
  })

  .get('/organizations/:orgId/alerts/events', async (c) => {
    const orgId = await existingOrg(c.env.DB, c.req.param('orgId'));
    const events = await recentAlertEvents(c.env.DB, orgId, 100);
    return c.json({ object: 'list', org_id: orgId, data: events.map(alertEventWire) });
  });
