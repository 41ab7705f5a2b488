/**
 * The dashboard API's spend-control endpoints (mounted at /dashboard/api beside dashboard-api.ts,
 * behind `session()`). Reference: workers/src/dashboard/API.md.
 *
 *   PUT    /keys/:id/budget          { limit_micros, period, time_zone? }   needs keys:write, not the session's own key
 *   DELETE /keys/:id/budget
 *   PUT    /keys/:id/allowed-models  { models: [...] | null }
 *   GET    /alerts?org               the org's alert settings (the signing secret only with keys:write)
 *   PUT    /alerts                   { webhook_url, balance_below_micros?, key_budget_percent?, rotate_secret?, org_id? }  needs keys:write
 *   DELETE /alerts?org               alerts off
 *   GET    /alerts/events?org        the org's alerts, newest first, with each delivery's outcome
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { deleteAlertSettings, recentAlertEvents } from '../billing/alerts/alert-settings.ts';
import { alertEventWire, changeAlertSettings, changeAllowedModels, changeKeyBudget, readAlertSettings } from '../billing/spend-controls.ts';
import { controllableKey, requireKeyManager } from '../dashboard/keys.ts';
import type { AppEnv } from '../env.ts';
import { orgOnly, validated } from '../schemas/dashboard-api.ts';
import * as schemas from '../schemas/spend-controls.ts';
import { oneOrg } from './dashboard-api.ts';

const alertSettingsBody = schemas.alertSettings.extend({ org_id: z.string().min(1).optional() });

export const dashboardSpendControls = new Hono<AppEnv>()
  .put('/keys/:id/budget', validated('json', schemas.keyBudget), async (c) => {
    const k = await controllableKey(c.env.DB, c.var.viewer, c.req.param('id'));
    const b = c.req.valid('json');
    const controls = await changeKeyBudget(c.env, k.orgId, k.id, { limitMicros: b.limit_micros, period: b.period, timeZone: b.time_zone });
    return c.json({ key_id: k.id, org_id: k.orgId, ...controls });
  })

  .delete('/keys/:id/budget', async (c) => {
    const k = await controllableKey(c.env.DB, c.var.viewer, c.req.param('id'));
    return c.json({ key_id: k.id, org_id: k.orgId, ...(await changeKeyBudget(c.env, k.orgId, k.id, null)) });
  })

  .put('/keys/:id/allowed-models', validated('json', schemas.allowedModels), async (c) => {
    const k = await controllableKey(c.env.DB, c.var.viewer, c.req.param('id'));
    return c.json({ key_id: k.id, org_id: k.orgId, ...(await changeAllowedModels(c.env, k.orgId, k.id, c.req.valid('json').models)) });
  })

  .get('/alerts', validated('query', orgOnly), async (c) => {
    const orgId = await oneOrg(c, c.req.valid('query').org);
    const settings = await readAlertSettings(c.env, orgId);
    const viewer = c.var.viewer;
    const manager = viewer.role === 'admin' || viewer.scopes.has('keys:write');
    return c.json({ org_id: orgId, ...settings, webhook_secret: manager ? settings.webhook_secret : null });
  })

  .put('/alerts', validated('json', alertSettingsBody), async (c) => {
    requireKeyManager(c.var.viewer);
    const { org_id, ...body } = c.req.valid('json');
    const orgId = await oneOrg(c, org_id, 'org_id');
    return c.json({ org_id: orgId, ...(await changeAlertSettings(c.env, orgId, body)) });
  })

  .delete('/alerts', validated('query', orgOnly), async (c) => {
    requireKeyManager(c.var.viewer);
    const orgId = await oneOrg(c, c.req.valid('query').org);
    await deleteAlertSettings(c.env.DB, orgId);
    return c.json({ org_id: orgId, ...(await readAlertSettings(c.env, orgId)) });
  })

  .get('/alerts/events', validated('query', orgOnly), async (c) => {
    const orgId = await oneOrg(c, c.req.valid('query').org);
    const events = await recentAlertEvents(c.env.DB, orgId, 50);
    return c.json({ object: 'list', org_id: orgId, data: events.map(alertEventWire) });
  });
