/**
 * `Idempotency-Key` for admin writes that move money or mint keys, as Stripe has it: the same key
 * with the same body gets the same result (the first answer replayed, marked `Idempotent-Replayed:
 * true`); the same key with another body is a 409; a retry while the first is still running is a
 * 409 too. Records live in D1 (idempotency_keys) for 24 hours; the scheduled handler trims them.
 *
 * The routes behind it are idempotent on the key themselves (a grant's ledger row is unique on
 * `grant:<key>`, a key minted under an Idempotency-Key is derived from it), so a first attempt that
 * failed half-way — D1 written, the org's object not reached — is completed by the retry, never doubled.
 */
import { and, eq, lt } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import type { MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { idempotencyKeys } from '../../../shared/schema.ts';
import { sha256Hex } from '../api-keys.ts';
import type { AppEnv } from '../env.ts';
import { IdempotencyConflictError, InvalidRequestError } from '../errors.ts';

export const IDEMPOTENCY_RETENTION_MS = 24 * 3600_000;
/** Status of a record whose first request has not answered yet. */
const IN_PROGRESS = 0;

export interface IdempotencyVariables {
  /** The request's Idempotency-Key, when it sent one (validated). */
  idempotencyKey: string | undefined;
}

export interface IdempotencyOptions {
  /**
   * 'stored': replay the first answer's body. 'rerun': run the (idempotent) handler again, for
   * answers that hold a secret which must not be stored (a minted API key).
   */
  replay: 'stored' | 'rerun';
}

/**
 * @example
 * admin.post('/credit', idempotent({ replay: 'stored' }), jsonBody(schema), handler)
 */
export function idempotent({ replay }: IdempotencyOptions): MiddlewareHandler<AppEnv> {
  return async function idempotent(c, next) {
    const key = c.req.header('idempotency-key');
    c.set('idempotencyKey', undefined);
    if (key === undefined) return next();
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
      throw new InvalidRequestError('Idempotency-Key must be 1 to 255 printable ASCII characters', 'Idempotency-Key');
    }
    c.set('idempotencyKey', key);
    const scope = `${c.req.method} ${c.req.routePath}`;
    const requestHash = await sha256Hex(await c.req.raw.clone().text());
    const db = drizzle(c.env.DB);
    const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));

    // Claim the key: only one request runs under it at a time.
    const claimed = await db
      .insert(idempotencyKeys)
      .values({ scope, key, requestHash, status: IN_PROGRESS, responseBody: '', createdAt: Date.now() })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (claimed.length === 0) {
      const [seen] = await db.select().from(idempotencyKeys).where(where);
      if (seen.requestHash !== requestHash) throw new IdempotencyConflictError('different_body');
      if (seen.status === IN_PROGRESS) throw new IdempotencyConflictError('in_progress');
      if (replay === 'stored' && seen.responseBody !== '') {
        return c.body(seen.responseBody, seen.status as ContentfulStatusCode, {
          'content-type': 'application/json',
          'idempotent-replayed': 'true',
        });
      }
      // 'rerun', or a first attempt that failed: run again (the handler is idempotent on the key).
      await db.update(idempotencyKeys).set({ status: IN_PROGRESS }).where(where);
      c.header('idempotent-replayed', 'true');
    }

    try {
      await next();
    } finally {
      const ok = c.res.status >= 200 && c.res.status < 300 && !c.error;
      // A success is the answer to replay; a failure frees the key for a retry with the same body.
      const responseBody = ok && replay === 'stored' ? await c.res.clone().text() : '';
      await db
        .update(idempotencyKeys)
        .set({ status: ok ? c.res.status : 500, responseBody })
        .where(where);
    }
  };
}

/** Forgets records older than the retention (scheduled handler). */
export async function trimIdempotencyKeys(d1: D1Database, now = Date.now()): Promise<void> {
  await drizzle(d1).delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, now - IDEMPOTENCY_RETENTION_MS));
}
