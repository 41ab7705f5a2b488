/**
 * Admin API for a model's backends, behind adminAuth:
 *   GET    /admin/models/:model/backends         the list, in priority order
 *   POST   /admin/models/:model/backends         add one (kind "pool" or "openai")
 *   DELETE /admin/models/:model/backends/:name   remove one
 * A model with no backends is served by its node pool, as before.
 */
import { Hono } from 'hono';
import { database, getModel } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { InvalidRequestError, ModelNotFoundError, NotFoundError } from '../errors.ts';
import { createBackend } from '../schemas/backends.ts';
import { jsonBody } from '../schemas/validate.ts';
import { backendRows, deleteBackend, insertBackend } from '../upstreams/backends.ts';

export const backends = new Hono<AppEnv>()
  .get('/:model/backends', async (c) => {
    const db = database(c.env.DB);
    const model = c.req.param('model');
    if (!(await getModel(db, model))) throw new ModelNotFoundError(model);
    return c.json({ model, backends: await backendRows(db, model) });
  })

  .post('/:model/backends', jsonBody(createBackend), async (c) => {
    const body = c.req.valid('json');
    const db = database(c.env.DB);
    const model = c.req.param('model');
    if (!(await getModel(db, model))) throw new ModelNotFoundError(model);
    if ((await backendRows(db, model)).some((b) => b.name === body.name)) {
      throw new InvalidRequestError(`model '${model}' already has a backend named '${body.name}'`, 'name', 'conflict');
    }
    const row = await insertBackend(db, {
      modelId: model,
      name: body.name,
      kind: body.kind,
      priority: body.priority ?? 0,
      weight: body.weight ?? 1,
      createdAt: Date.now(),
      ...(body.kind === 'pool'
        ? { pool: body.pool }
        : {
            baseUrl: body.base_url.replace(/\/+$/, ''),
            apiKeySecret: body.api_key_secret ?? null,
            upstreamModel: body.upstream_model,
            timeoutMs: body.timeout_ms ?? 30_000,
            streamUsage: body.stream_usage === false ? 0 : 1,
          }),
    });
    return c.json(row, 201);
  })

  .delete('/:model/backends/:name', async (c) => {
    const { model, name } = c.req.param();
    if (!(await deleteBackend(database(c.env.DB), model, name))) throw new NotFoundError(`backend '${name}' of '${model}'`);
    return c.json({ model, name, removed: true });
  });
