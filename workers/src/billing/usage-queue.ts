/**
 * Usage rows and ledger debits leave the request path through a Cloudflare Queue (USAGE_QUEUE):
 * the meter sends one message per request; the consumer writes a whole batch in one D1 transaction.
 *
 * Exactly once, whatever is retried: every write is unique on the request id (ledger.ts), and the
 * charge is the org's object's settlement, which is idempotent too. A message whose request could
 * not be settled on the request path (the object did not answer) is settled here first, so the
 * debit written is always the amount the object charged. A failed batch is redelivered whole.
 */
import { recordUsageBatch, type NewUsageEvent, type ReservationRecord } from './ledger.ts';
import { orgAccount } from './request-billing.ts';

export interface UsageMessage {
  /** The usage row as metered; costMicros is the full cost until the charge replaces it. */
  event: NewUsageEvent & { costMicros: number };
  /** Prompt + completion tokens, for the rate windows' real count. */
  tokens: number;
  /** What the org's object charged, or null when the request path could not reach it. */
  charge: { chargedMicros: number; overrunMicros: number } | null;
  /** The request's reservation, recorded in D1 with its outcome; null if it was never admitted. */
  reservation: ReservationRecord | null;
}

/** Back-off for a batch that failed (D1 or the object unreachable), in seconds. */
const RETRY_DELAY_SECONDS = 2;

/** Hands the request's usage to the queue; if the queue cannot take it, writes it directly. */
export async function enqueueUsage(env: Env, message: UsageMessage): Promise<void> {
  try {
    await env.USAGE_QUEUE.send(message, { contentType: 'json' });
  } catch (err) {
    console.warn(`usage ${message.event.requestId}: queue send failed, writing directly: ${String(err)}`);
    await writeWithRetries(env, [message]);
  }
}

/** The queue consumer: settle what is unsettled, then one D1 batch for all rows. */
export async function consumeUsage(batch: MessageBatch<UsageMessage>, env: Env): Promise<void> {
  try {
    await writeUsage(env, batch.messages.map((m) => m.body));
    batch.ackAll();
  } catch (err) {
    console.error(`usage batch of ${batch.messages.length} failed, will be redelivered: ${String(err)}`);
    batch.retryAll({ delaySeconds: RETRY_DELAY_SECONDS });
  }
}

/** Settles (when needed) and writes `messages`; throws if any part failed, having written nothing. */
export async function writeUsage(env: Env, messages: UsageMessage[]): Promise<void> {
  const events = await Promise.all(
    messages.map(async (m): Promise<NewUsageEvent> => {
      const charge = m.charge ?? (await settleLate(env, m));
      return { ...m.event, costMicros: charge.chargedMicros, overrunMicros: charge.overrunMicros };
    }),
  );
  await recordUsageBatch(env.DB, events, messages.map((m) => m.reservation));
}

async function settleLate(env: Env, m: UsageMessage): Promise<{ chargedMicros: number; overrunMicros: number }> {
  const { orgId, requestId, costMicros } = m.event;
  const s = await orgAccount(env, orgId).settle({ orgId, requestId, costMicros, tokens: m.tokens });
  return { chargedMicros: s.chargedMicros, overrunMicros: s.overrunMicros };
}

/**
 * Backoff for the direct write (the queue refused the message): a D1 write can fail transiently.
 * About 4 s in all, well inside waitUntil's 30 s after the response.
 */
const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000];

async function writeWithRetries(env: Env, messages: UsageMessage[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await writeUsage(env, messages);
    } catch (err) {
      if (attempt >= RETRY_DELAYS_MS.length) throw err;
      console.warn(`usage write failed (attempt ${attempt + 1}), retrying: ${String(err)}`);
      await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt]));
    }
  }
}
