/**
 * The ALERT_QUEUE consumer: POSTs each alert event to its org's webhook URL, signed
 * (webhook-signature.ts), and records the outcome on the event's D1 row. A 2xx answer delivers it;
 * anything else (an error status, no answer within the timeout) retries the message with
 * exponential backoff (1 s, 2 s, 4 s … capped at an hour) up to the queue's max_retries. An event
 * already delivered is acknowledged without sending again, so a redelivered message never reaches
 * the receiver twice from here; the `webhook-id` header lets the receiver deduplicate the rest.
 */
import type { AlertMessage } from './alert-triggers.ts';
import { alertSettings, recordAlertEvent, recordAttempt } from './alert-settings.ts';
import { signWebhook } from './webhook-signature.ts';

const DELIVERY_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_SECONDS = 3_600;

export function backoffSeconds(attempt: number): number {
  return Math.min(MAX_BACKOFF_SECONDS, 2 ** Math.max(0, attempt - 1));
}

export async function consumeAlerts(batch: MessageBatch<AlertMessage>, env: Env): Promise<void> {
  await Promise.all(batch.messages.map((m) => deliver(m, env)));
}

async function deliver(message: Message<AlertMessage>, env: Env): Promise<void> {
  const event = message.body;
  try {
    const row = await recordAlertEvent(env.DB, event);
    if (row.deliveredAt !== null) return message.ack();
    const settings = await alertSettings(env.DB, event.orgId);
    if (!settings) {
      // Alerts were switched off after this crossing: nothing to send to.
      await recordAttempt(env.DB, event.eventId, null, 'no webhook configured', false);
      return message.ack();
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = await signWebhook(settings.webhookSecret, event.eventId, timestamp, event.payload);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(settings.webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': event.eventId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signature,
          'user-agent': 'edge-inference-webhooks/1',
        },
        body: event.payload,
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
      status = res.status;
      await res.body?.cancel();
    } catch (err) {
      error = String(err);
    }
    const delivered = status !== null && status >= 200 && status < 300;
    await recordAttempt(env.DB, event.eventId, status, delivered ? null : (error ?? `HTTP ${status}`), delivered);
    if (delivered) return message.ack();
    message.retry({ delaySeconds: backoffSeconds(message.attempts) });
  } catch (err) {
    // D1 unreachable: try the whole delivery again later.
    console.error(`alert ${event.eventId}: delivery bookkeeping failed, retrying: ${String(err)}`);
    message.retry({ delaySeconds: backoffSeconds(message.attempts) });
  }
}
