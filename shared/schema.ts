/**
 * D1 tables (drizzle). Nothing but table declarations: queries live in workers/src/db/queries.ts,
 * migrations are generated from this file into migrations/ by `npm run db:generate`.
 *
 * Units: timestamps are integer milliseconds since the epoch; money is integer micro-dollars
 * (1 USD = 1_000_000); prices are micro-dollars per million tokens.
 */
import { sql } from 'drizzle-orm';
import { index, integer, sqliteTable, text, uniqueIndex, type AnySQLiteColumn } from 'drizzle-orm/sqlite-core';

export const organizations = sqliteTable('organizations', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: integer('created_at').notNull(),
});

/** The key itself is never stored: only its SHA-256 (hex) and a short prefix shown in listings. */
export const apiKeys = sqliteTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    orgId: text('org_id').notNull().references(() => organizations.id),
    name: text('name').notNull().default(''),
    /** First characters of the key ("sk-" + 8), enough to find the row and to recognise the key. */
    prefix: text('prefix').notNull(),
    /** Lower-case hex SHA-256 of the whole key. */
    hash: text('hash').notNull(),
    /** Space-separated scopes, e.g. "models:read chat completions". */
    scopes: text('scopes').notNull(),
    createdAt: integer('created_at').notNull(),
    /** Never later than the parent key's expiry (a key cannot outlive the key that created it). */
    expiresAt: integer('expires_at'),
    revokedAt: integer('revoked_at'),
    /** The key whose dashboard session created this one (null: created by the admin). Revoking a key revokes its children, transitively. */
    parentKeyId: text('parent_key_id').references((): AnySQLiteColumn => apiKeys.id),
  },
  (t) => [uniqueIndex('api_keys_hash_uq').on(t.hash), index('api_keys_prefix_idx').on(t.prefix), index('api_keys_parent_idx').on(t.parentKeyId)],
);

export const models = sqliteTable('models', {
  /** Public id clients send in `model`. */
  id: text('id').primaryKey(),
  displayName: text('display_name').notNull(),
  contextLength: integer('context_length').notNull(),
  /** Node pool that serves it; its URLs are in gpu_nodes (or the GPU_NODE_URLS var). */
  pool: text('pool').notNull(),
  /** Model id as the GPU node knows it. */
  nodeModel: text('node_model').notNull(),
  ownedBy: text('owned_by').notNull().default('edge-inference'),
  createdAt: integer('created_at').notNull(),
});

export const gpuNodes = sqliteTable(
  'gpu_nodes',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    pool: text('pool').notNull(),
    url: text('url').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('gpu_nodes_pool_url_uq').on(t.pool, t.url)],
);

/** Append-only: a price change is a new row with a later effective_from, so history never changes. */
export const prices = sqliteTable(
  'prices',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    modelId: text('model_id').notNull().references(() => models.id),
    /** Micro-dollars per million prompt tokens not served from the prefix cache. */
    inputCacheMiss: integer('input_cache_miss').notNull(),
    /** Micro-dollars per million prompt tokens served from the prefix cache. */
    inputCacheHit: integer('input_cache_hit').notNull(),
    /** Micro-dollars per million completion tokens. */
    output: integer('output').notNull(),
    effectiveFrom: integer('effective_from').notNull(),
  },
  (t) => [uniqueIndex('prices_model_from_uq').on(t.modelId, t.effectiveFrom)],
);

/** One row per request, written once when it ends (finished, cancelled or failed). */
export const usageEvents = sqliteTable(
  'usage_events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    requestId: text('request_id').notNull(),
    orgId: text('org_id').notNull(),
    keyId: text('key_id').notNull(),
    modelId: text('model_id').notNull(),
    endpoint: text('endpoint').notNull(),
    /** All prompt tokens, cached ones included. */
    promptTokens: integer('prompt_tokens').notNull(),
    cachedTokens: integer('cached_tokens').notNull(),
    completionTokens: integer('completion_tokens').notNull(),
    /** The price row in force when the request started. */
    priceId: integer('price_id').notNull(),
    costMicros: integer('cost_micros').notNull(),
    /** "completed" | "cancelled" | "failed" */
    status: text('status').notNull(),
    finishReason: text('finish_reason'),
    startedAt: integer('started_at').notNull(),
    finishedAt: integer('finished_at').notNull(),
    /** 1 when the token counts are the edge's own estimate (an upstream engine sent no usage). */
    estimated: integer('estimated').notNull().default(0),
    /** Name of the backend that served it (model_backends.name); NULL for the default node pool. */
    backend: text('backend'),
    /**
     * Cost above what was billed: an upstream that reported more tokens than the edge reserved for.
     * A request is never billed above its reservation; cost_micros is what was billed (= the debit).
     */
    overrunMicros: integer('overrun_micros').notNull().default(0),
    /** Milliseconds from the request's start to its first output token sent; NULL when none was sent. */
    ttftMs: integer('ttft_ms'),
  },
  (t) => [
    uniqueIndex('usage_events_request_uq').on(t.requestId),
    index('usage_events_org_idx').on(t.orgId, t.startedAt),
    // Dashboard and statements: one org's requests by finish time, covering every column
    // the range sums read so they never touch the table (3× faster for a big org, bench:dashboard);
    // and every org's by finish time for the admin view and newest-first paging.
    index('usage_events_org_finished_idx').on(
      t.orgId,
      t.finishedAt,
      t.priceId,
      t.modelId,
      t.keyId,
      t.promptTokens,
      t.cachedTokens,
      t.completionTokens,
      t.costMicros,
    ),
    index('usage_events_finished_idx').on(t.finishedAt),
  ],
);

/** Append-only credit ledger: grants are positive, usage debits negative; the balance is the sum. */
export const creditLedger = sqliteTable(
  'credit_ledger',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    orgId: text('org_id').notNull().references(() => organizations.id),
    amountMicros: integer('amount_micros').notNull(),
    /**
     * "grant" | "usage" | "refund" (a Stripe refund taking back credit it paid for) | "expiry" (a
     * reservation that expired unsettled, charged what its stream last reported delivered)
     */
    kind: text('kind').notNull(),
    /**
     * Unique entry id: the request id of a usage debit, "grant:<Idempotency-Key>" of an admin grant,
     * "stripe:<event id>" of a Stripe top-up or refund, "expiry:<request id>" of an expiry; NULL for
     * a grant without one.
     */
    requestId: text('request_id'),
    note: text('note').notNull().default(''),
    createdAt: integer('created_at').notNull().default(sql`(unixepoch() * 1000)`),
  },
  (t) => [uniqueIndex('credit_ledger_request_uq').on(t.requestId), index('credit_ledger_org_idx').on(t.orgId)],
);

// ── rate limits and prepaid credit reservations ───────────────────────────────────────────────

/** An org's plan tier (workers/src/limits/plans.ts) and its overrides; NULL = the plan's default. */
export const orgLimits = sqliteTable('org_limits', {
  orgId: text('org_id')
    .primaryKey()
    .references(() => organizations.id),
  plan: text('plan'),
  rpm: integer('rpm'),
  tpm: integer('tpm'),
  /** Prompt + completion tokens per UTC day. */
  tpd: integer('tpd'),
  concurrency: integer('concurrency'),
  updatedAt: integer('updated_at').notNull(),
});

/** Per-key overrides; NULL = the default of the key's org plan. */
export const keyLimits = sqliteTable('key_limits', {
  keyId: text('key_id')
    .primaryKey()
    .references(() => apiKeys.id),
  rpm: integer('rpm'),
  tpm: integer('tpm'),
  /** Prompt + completion tokens per UTC day. */
  tpd: integer('tpd'),
  concurrency: integer('concurrency'),
  updatedAt: integer('updated_at').notNull(),
});

/**
 * Durable record of every credit reservation (the live ones are held by the org's Durable Object).
 * One row per request id: written when reserved, updated once when settled or expired, so
 * replays never change it twice. The charge itself is the request's `usage` row in credit_ledger.
 */
export const creditReservations = sqliteTable(
  'credit_reservations',
  {
    requestId: text('request_id').primaryKey(),
    orgId: text('org_id').notNull(),
    keyId: text('key_id').notNull(),
    /** Worst case held: prompt tokens at the cache-miss price + max_tokens at the output price. */
    amountMicros: integer('amount_micros').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    /** "open" | "settled" | "expired" */
    status: text('status').notNull(),
    chargedMicros: integer('charged_micros'),
    settledAt: integer('settled_at'),
  },
  (t) => [index('credit_reservations_org_idx').on(t.orgId, t.status)],
);

// ── upstream engines ──────────────────────────────────────────────────────────────────────────

/**
 * A model's ordered backends. kind "pool": our GPU nodes of `pool` (token-batch protocol); kind
 * "openai": an OpenAI-compatible engine (vLLM, SGLang, a hosted API) at `base_url`, authenticated
 * with the Worker secret NAMED by `api_key_secret` (the key itself never lives in D1). Lower
 * `priority` is tried first; backends sharing a priority split traffic by `weight`.
 */
export const modelBackends = sqliteTable(
  'model_backends',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    modelId: text('model_id')
      .notNull()
      .references(() => models.id),
    /** Unique per model; sent back in the x-backend header and recorded on the usage row. */
    name: text('name').notNull(),
    /** "pool" | "openai" */
    kind: text('kind').notNull(),
    priority: integer('priority').notNull().default(0),
    weight: integer('weight').notNull().default(1),
    /** kind "pool": the node pool (gpu_nodes.pool). */
    pool: text('pool'),
    /** kind "openai": e.g. "http://10.0.0.5:8000/v1" (".../chat/completions" is appended). */
    baseUrl: text('base_url'),
    /** kind "openai": name of the Worker secret holding the API key; NULL sends no Authorization. */
    apiKeySecret: text('api_key_secret'),
    /** kind "openai": the model name the upstream knows. */
    upstreamModel: text('upstream_model'),
    /** Milliseconds to wait for the upstream's response headers (not the whole stream). */
    timeoutMs: integer('timeout_ms').notNull().default(30_000),
    /** 1: ask for usage in streams (stream_options.include_usage); 0 for engines that reject it. */
    streamUsage: integer('stream_usage').notNull().default(1),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('model_backends_model_name_uq').on(t.modelId, t.name)],
);

/**
 * Idempotency-Key records of admin writes that move money or mint keys (Stripe's rule): the same key
 * with the same body replays the stored answer; with another body it is a 409. Kept 24 hours.
 */
export const idempotencyKeys = sqliteTable(
  'idempotency_keys',
  {
    /** The route the key was used on ("POST /admin/credit"): one key per route. */
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    /** SHA-256 of the request body. */
    requestHash: text('request_hash').notNull(),
    /** The answer to replay (status + JSON body); secrets are never stored here. */
    status: integer('status').notNull(),
    responseBody: text('response_body').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('idempotency_keys_uq').on(t.scope, t.key), index('idempotency_keys_created_idx').on(t.createdAt)],
);

// ── paid top-ups ──────────────────────────────────────────────────────────────────────────────

/**
 * One row per paid Stripe Checkout Session: the receipt of a top-up. Written by the webhook of the
 * event that paid it (the one event whose ledger grant row is "stripe:<event_id>"); refunds of its
 * charge update `refunded_cents` and `refund_debited_micros`, each refund being its own ledger row.
 */
export const topups = sqliteTable(
  'topups',
  {
    /** The Checkout Session id ("cs_..."): one receipt per session, whatever events repeat. */
    id: text('id').primaryKey(),
    orgId: text('org_id')
      .notNull()
      .references(() => organizations.id),
    /** The Stripe event that granted the credit ("evt_..."). */
    eventId: text('event_id').notNull(),
    /** The PaymentIntent ("pi_..."): how a charge.refunded event finds its top-up. */
    paymentIntentId: text('payment_intent_id'),
    /** What Stripe collected, in the currency's minor unit (USD cents). */
    amountCents: integer('amount_cents').notNull(),
    currency: text('currency').notNull(),
    /** Credit granted: amount_cents × 10 000. */
    amountMicros: integer('amount_micros').notNull(),
    /** The ledger grant row; NULL until the grant is written. */
    ledgerId: integer('ledger_id'),
    customerEmail: text('customer_email'),
    /** Stripe's cumulative amount_refunded of the charge, cents. */
    refundedCents: integer('refunded_cents').notNull().default(0),
    /** What the refunds took from the balance (never more than was left in it). */
    refundDebitedMicros: integer('refund_debited_micros').notNull().default(0),
    /** When Stripe created the event that paid it. */
    paidAt: integer('paid_at').notNull(),
  },
  (t) => [uniqueIndex('topups_event_uq').on(t.eventId), index('topups_org_idx').on(t.orgId, t.paidAt), index('topups_payment_intent_idx').on(t.paymentIntentId)],
);

// ── spend control: per-key budgets and model allowlists, alert webhooks ───────────────────────

/**
 * A key's spend cap: at most `limit_micros` charged per period ("daily" | "weekly" | "monthly" |
 * "total"), periods starting at midnight (weeks on Monday, months on the 1st) in `time_zone` (IANA).
 * Enforced by the org's OrgAccount at admission with the worst-case reservation. No row = no cap.
 */
export const keyBudgets = sqliteTable('key_budgets', {
  keyId: text('key_id')
    .primaryKey()
    .references(() => apiKeys.id),
  limitMicros: integer('limit_micros').notNull(),
  period: text('period').notNull(),
  timeZone: text('time_zone').notNull().default('UTC'),
  updatedAt: integer('updated_at').notNull(),
});

/** The only models a key may use (space-separated model ids); no row = every model. */
export const keyModelAllowlists = sqliteTable('key_model_allowlists', {
  keyId: text('key_id')
    .primaryKey()
    .references(() => apiKeys.id),
  models: text('models').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/**
 * An org's alert thresholds and where to send them. Thresholds are NULL when off. The secret signs
 * every delivery (Standard Webhooks: "whsec_" + base64 of the HMAC-SHA256 key).
 */
export const orgAlertSettings = sqliteTable('org_alert_settings', {
  orgId: text('org_id')
    .primaryKey()
    .references(() => organizations.id),
  webhookUrl: text('webhook_url').notNull(),
  webhookSecret: text('webhook_secret').notNull(),
  /** Alert when the balance falls below this many micro-dollars. */
  balanceBelowMicros: integer('balance_below_micros'),
  /** Alert when a key has spent this percentage (1–100) of its budget in the current period. */
  keyBudgetPercent: integer('key_budget_percent'),
  updatedAt: integer('updated_at').notNull(),
});

/** One row per alert (one per threshold crossing), with its webhook delivery's outcome. */
export const alertEvents = sqliteTable(
  'alert_events',
  {
    /** The event id, sent as `webhook-id`: receivers deduplicate on it. */
    id: text('id').primaryKey(),
    orgId: text('org_id').notNull(),
    /** "balance.below_threshold" | "key.budget_threshold" */
    type: text('type').notNull(),
    keyId: text('key_id'),
    /** The JSON body delivered. */
    payload: text('payload').notNull(),
    createdAt: integer('created_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** HTTP status of the last attempt (NULL: not attempted or no answer). */
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    deliveredAt: integer('delivered_at'),
  },
  (t) => [index('alert_events_org_idx').on(t.orgId, t.createdAt)],
);
