import { Hono } from 'hono';
import { cachedLimits } from '../db/read-cache.ts';
import { database, getModel, listModels, type ModelRow } from '../db/queries.ts';
import { ModelNotAllowedError, ModelNotFoundError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';

/**
 * GET /v1/models and /v1/models/:id, in OpenAI's list shape plus our context length. A key with a
 * model allowlist sees only the models it may use.
 */
export const models = new Hono<AppEnv>()
  .get('/', requireScope('models:read'), async (c) => {
    const [rows, allowed] = await Promise.all([listModels(database(c.env.DB)), allowedModels(c.env, c.var.apiKey)]);
    return c.json({ object: 'list' as const, data: rows.filter((m) => !allowed || allowed.includes(m.id)).map(modelObject) });
  })
  .get('/:id', requireScope('models:read'), async (c) => {
    const id = c.req.param('id');
    const [row, allowed] = await Promise.all([getModel(database(c.env.DB), id), allowedModels(c.env, c.var.apiKey)]);
    if (!row) throw new ModelNotFoundError(id);
    if (allowed && !allowed.includes(id)) throw new ModelNotAllowedError(id);
    return c.json(modelObject(row));
  });

async function allowedModels(env: Env, key: { id: string; orgId: string }): Promise<string[] | null> {
  return (await cachedLimits(env, key.orgId, key.id)).allowedModels ?? null;
}

function modelObject(m: ModelRow) {
  return {
    id: m.id,
    object: 'model' as const,
    created: Math.floor(m.createdAt / 1000),
    owned_by: m.ownedBy,
    display_name: m.displayName,
    context_length: m.contextLength,
  };
}
