/**
 * Admin API (behind adminAuth): organizations, keys, credit, prices, GPU nodes, usage lookup and
 * reconciliation. Money is integer micro-dollars; times are epoch milliseconds. Credit grants and
 * key creation take an Idempotency-Key header (billing/idempotency.ts).
 */
import { Hono } from 'hono';
import { DEFAULT_SCOPES, deriveKey, generateKey } from '../api-keys.ts';
import { idempotent } from '../billing/idempotency.ts';
import { grantToOrg } from '../billing/grants.ts';
import { creditBalance, ledgerEntryForRequest, usageEventsForRequest } from '../billing/ledger.ts';
import { reconcile } from '../billing/reconcile.ts';
import {
  createOrganization,
  database,
  getModel,
  insertApiKey,
  insertPrice,
  organizationExists,
  priceAt,
  registerNode,
  removeNode,
  revokeApiKey,
} from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { InvalidRequestError, ModelNotFoundError, NotFoundError } from '../errors.ts';
import * as schemas from '../schemas/admin.ts';
import { jsonBody } from '../schemas/validate.ts';

export const admin = new Hono<AppEnv>()
  .post('/organizations', jsonBody(schemas.createOrganization), async (c) => {
    const { id = `org_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`, name } = c.req.valid('json');
    const db = database(c.env.DB);
    if (await organizationExists(db, id)) throw new InvalidRequestError(`organization '${id}' already exists`, 'id', 'conflict');
    await createOrganization(db, id, name);
    return c.json({ id, name }, 201);
  })

  .post('/keys', idempotent({ replay: 'rerun' }), jsonBody(schemas.createKey), async (c) => {
    const body = c.req.valid('json');
    const db = database(c.env.DB);
    if (!(await organizationExists(db, body.org_id))) throw new NotFoundError(`organization '${body.org_id}'`);
    // Under an Idempotency-Key the key is derived from it, so a retry answers with the same key
    // without the secret ever being stored; the insert below then finds its row already there.
    const idem = c.var.idempotencyKey;
    const { key, prefix, hash, id } = idem
      ? await deriveKey(c.env.ADMIN_TOKEN, idem)
      : { ...(await generateKey()), id: `key_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}` };
    const scopes = body.scopes ?? [...DEFAULT_SCOPES];
    await insertApiKey(db, {
      id,
      orgId: body.org_id,
      name: body.name ?? '',
      prefix,
      hash,
      scopes: scopes.join(' '),
      createdAt: Date.now(),
      expiresAt: body.expires_at ?? null,
    });
    // The only time the key is ever shown: D1 keeps its hash.
    return c.json({ id, key, prefix, org_id: body.org_id, scopes, expires_at: body.expires_at ?? null }, 201);
  })

  .post('/keys/:id/revoke', async (c) => {
    const id = c.req.param('id');
    const revoked = await revokeApiKey(database(c.env.DB), id, Date.now());
    if (!revoked) throw new NotFoundError(`key '${id}'`);
    // The key and every key created from its dashboard session, transitively.
    return c.json({ id, revoked: true, revoked_key_ids: revoked });
  })

  .post('/credit', idempotent({ replay: 'stored' }), jsonBody(schemas.grantCredit), async (c) => {
    const { org_id, amount_micros, note } = c.req.valid('json');
    const db = database(c.env.DB);
    if (!(await organizationExists(db, org_id))) throw new NotFoundError(`organization '${org_id}'`);
    // Under an Idempotency-Key the ledger row is unique on it: a retry finds the first row. If the
    // object's half fails the answer is a 500 and a retry with the same key completes the grant.
    const idem = c.var.idempotencyKey;
    const grant = await grantToOrg(c.env, org_id, amount_micros, note ?? '', idem ? `grant:${idem}` : undefined);
    return c.json({ org_id, ledger_id: grant.ledgerId, balance_micros: grant.balanceMicros }, 201);
  })

  .get('/organizations/:id/balance', async (c) => {
    const id = c.req.param('id');
    const db = database(c.env.DB);
    if (!(await organizationExists(db, id))) throw new NotFoundError(`organization '${id}'`);
    return c.json({ org_id: id, balance_micros: await creditBalance(db, id) });
  })

  .post('/prices', jsonBody(schemas.setPrice), async (c) => {
    const body = c.req.valid('json');
    const db = database(c.env.DB);
    if (!(await getModel(db, body.model))) throw new ModelNotFoundError(body.model);
    const now = Date.now();
    const effectiveFrom = body.effective_from ?? now;
    // Requests already started were priced by the row then in force; a back-dated row would change history.
    if (effectiveFrom < now) throw new InvalidRequestError('effective_from cannot be in the past', 'effective_from');
    const row = await insertPrice(db, {
      modelId: body.model,
      inputCacheMiss: body.input_cache_miss,
      inputCacheHit: body.input_cache_hit,
      output: body.output,
      effectiveFrom,
    });
    // One price per model per instant: which of two would apply is otherwise undefined.
    if (!row) throw new InvalidRequestError(`model '${body.model}' already has a price taking effect at ${effectiveFrom}; choose another effective_from`, 'effective_from', 'conflict');
    return c.json(row, 201);
  })

  .get('/prices/:model', async (c) => {
    const at = Number(c.req.query('at') ?? Date.now());
    const row = await priceAt(database(c.env.DB), c.req.param('model'), at);
    if (!row) throw new NotFoundError(`price for '${c.req.param('model')}'`);
    return c.json(row);
  })

  .post('/nodes', jsonBody(schemas.registerNode), async (c) => {
    const { pool, url } = c.req.valid('json');
    await registerNode(database(c.env.DB), pool, url.replace(/\/+$/, ''));
    return c.json({ pool, url }, 201);
  })

  .delete('/nodes', jsonBody(schemas.registerNode), async (c) => {
    const { pool, url } = c.req.valid('json');
    if (!(await removeNode(database(c.env.DB), pool, url.replace(/\/+$/, '')))) throw new NotFoundError(`node ${url} in '${pool}'`);
    return c.json({ pool, url, removed: true });
  })

  /** Every org's object against its D1 ledger (or one org's, ?org_id=): drift and open reservations. */
  .get('/reconcile', async (c) => {
    const orgId = c.req.query('org_id');
    const result = await reconcile(c.env, orgId ? [orgId] : undefined);
    const view = (o: (typeof result.orgs)[number]) => ({
      org_id: o.orgId,
      ledger_micros: o.ledgerMicros,
      object_micros: o.objectMicros,
      drift_micros: o.driftMicros,
      open_reservations: o.openReservations,
    });
    return c.json({ checked_at: result.checkedAt, orgs: result.orgs.map(view), drifted: result.drifted.map(view), ok: result.drifted.length === 0 });
  })

  .get('/usage/:requestId', async (c) => {
    const db = database(c.env.DB);
    const requestId = c.req.param('requestId');
    const [events, debit] = await Promise.all([usageEventsForRequest(db, requestId), ledgerEntryForRequest(db, requestId)]);
    if (events.length === 0) throw new NotFoundError(`usage for request '${requestId}'`);
    return c.json({ event: events[0], debit: debit ?? null });
  });
