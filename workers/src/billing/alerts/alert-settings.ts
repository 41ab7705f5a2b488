/** D1 reads and writes of an org's alert settings and its alert events (the dashboard's list). */
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { alertEvents, orgAlertSettings } from '../../../../shared/schema.ts';
import type { AlertMessage } from './alert-triggers.ts';
import { newWebhookSecret } from './webhook-signature.ts';

export interface AlertSettings {
  orgId: string;
  webhookUrl: string;
  webhookSecret: string;
  balanceBelowMicros: number | null;
  keyBudgetPercent: number | null;
  updatedAt: number;
}

export async function alertSettings(db: D1Database, orgId: string): Promise<AlertSettings | null> {
  const rows = await drizzle(db).select().from(orgAlertSettings).where(eq(orgAlertSettings.orgId, orgId)).limit(1);
  return rows[0] ?? null;
}

/**
 * Sets the org's webhook URL and thresholds. The signing secret is made on first use and kept
 * across updates; `rotateSecret` replaces it.
 */
export async function setAlertSettings(
  db: D1Database,
  orgId: string,
  input: { webhookUrl: string; balanceBelowMicros: number | null; keyBudgetPercent: number | null; rotateSecret?: boolean },
): Promise<AlertSettings> {
  const existing = await alertSettings(db, orgId);
  const row = {
    webhookUrl: input.webhookUrl,
    webhookSecret: existing && !input.rotateSecret ? existing.webhookSecret : newWebhookSecret(),
    balanceBelowMicros: input.balanceBelowMicros,
    keyBudgetPercent: input.keyBudgetPercent,
    updatedAt: Date.now(),
  };
  await drizzle(db).insert(orgAlertSettings).values({ orgId, ...row }).onConflictDoUpdate({ target: orgAlertSettings.orgId, set: row });
  return { orgId, ...row };
}

export async function deleteAlertSettings(db: D1Database, orgId: string): Promise<void> {
  await drizzle(db).delete(orgAlertSettings).where(eq(orgAlertSettings.orgId, orgId));
}

export type AlertEventRow = typeof alertEvents.$inferSelect;

/** The event's row, written on its first delivery attempt (INSERT OR IGNORE: once per event id). */
export async function recordAlertEvent(db: D1Database, m: AlertMessage): Promise<AlertEventRow> {
  const d = drizzle(db);
  await d
    .insert(alertEvents)
    .values({ id: m.eventId, orgId: m.orgId, type: m.type, keyId: m.keyId, payload: m.payload, createdAt: m.createdAt })
    .onConflictDoNothing();
  return (await d.select().from(alertEvents).where(eq(alertEvents.id, m.eventId)).limit(1))[0];
}

export async function recordAttempt(db: D1Database, eventId: string, status: number | null, error: string | null, delivered: boolean): Promise<void> {
  await drizzle(db)
    .update(alertEvents)
    .set({ attempts: sql`${alertEvents.attempts} + 1`, lastStatus: status, lastError: error, ...(delivered ? { deliveredAt: Date.now() } : {}) })
    // A delivered event is never re-opened by a stray duplicate message.
    .where(and(eq(alertEvents.id, eventId), isNull(alertEvents.deliveredAt)));
}

export async function recentAlertEvents(db: D1Database, orgId: string, limit: number): Promise<AlertEventRow[]> {
  return drizzle(db).select().from(alertEvents).where(eq(alertEvents.orgId, orgId)).orderBy(desc(alertEvents.createdAt)).limit(limit);
}
