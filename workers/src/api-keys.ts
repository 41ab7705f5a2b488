/**
 * API key material. A key is "sk-" + 48 hex chars (192 random bits). D1 stores only its SHA-256 and
 * the first PREFIX_LENGTH characters: the prefix finds the candidate rows, the hash decides, compared
 * in constant time so response timing says nothing about how much of a guess was right.
 */

export const KEY_PREFIX = 'sk-';
export const PREFIX_LENGTH = KEY_PREFIX.length + 8;

/**
 * Scopes a key can hold. `keys:write`: create and revoke its org's keys (the dashboard).
 * `billing`: pay for credit (Stripe Checkout top-ups).
 */
export const SCOPES = ['models:read', 'chat', 'completions', 'keys:write', 'billing'] as const;
export type Scope = (typeof SCOPES)[number];
/** A key created without a list gets these: everything but managing other keys. */
export const DEFAULT_SCOPES: readonly Scope[] = ['models:read', 'chat', 'completions'];

export interface NewKey {
  /** Shown to the caller once, never stored. */
  key: string;
  prefix: string;
  hash: string;
}

export async function generateKey(): Promise<NewKey> {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const key = KEY_PREFIX + toHex(bytes);
  return { key, prefix: key.slice(0, PREFIX_LENGTH), hash: await sha256Hex(key) };
}

/**
 * The key minted under Idempotency-Key `idempotencyKey`: HMAC-SHA-256 under the admin secret, so
 * the same request always mints the same key and a retry can show it again without storing it.
 */
export async function deriveKey(secret: string, idempotencyKey: string): Promise<NewKey & { id: string }> {
  const hmacKey = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = async (label: string) => new Uint8Array(await crypto.subtle.sign('HMAC', hmacKey, new TextEncoder().encode(`${label}\n${idempotencyKey}`)));
  const key = KEY_PREFIX + toHex((await mac('api-key')).slice(0, 24));
  const id = `key_${toHex((await mac('api-key-id')).slice(0, 8))}`;
  return { key, prefix: key.slice(0, PREFIX_LENGTH), hash: await sha256Hex(key), id };
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return toHex(new Uint8Array(digest));
}

/** Constant-time equality of two equal-length hex digests (workerd's crypto.subtle.timingSafeEqual). */
export function hashesEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  // Digests are fixed-length, so a length mismatch means corrupt data, not a timing leak.
  if (ea.byteLength !== eb.byteLength) return false;
  return crypto.subtle.timingSafeEqual(ea, eb);
}

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}
