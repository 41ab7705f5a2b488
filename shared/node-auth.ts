/**
 * The signature on every edge→node request of the token-batch protocol (shared/protocol.ts).
 *
 * The edge signs, the node verifies, both with the pool's shared secret:
 *
 *   signature = base64url(HMAC-SHA-256(secret, METHOD \n PATH \n TIMESTAMP \n NONCE \n hex(SHA-256(body))))
 *
 * sent as three headers (NODE_AUTH_HEADERS). PATH is the URL path without the query. The timestamp
 * (Unix seconds) bounds how long a captured request stays usable (NODE_AUTH_MAX_SKEW_S); the nonce
 * lets the node refuse a second copy within that window; the body digest ties the signature to the
 * exact bytes, so a body swapped after signing fails.
 *
 * WebCrypto only, so the same code runs in workerd and in Node. `crypto.subtle.verify` compares the
 * MAC in constant time, which is why verification re-verifies instead of comparing strings.
 */

export const NODE_AUTH_HEADERS = {
  timestamp: 'x-node-auth-timestamp',
  nonce: 'x-node-auth-nonce',
  signature: 'x-node-auth-signature',
} as const;

/** A signed request older or newer than this (seconds, either way) is refused: clocks drift, captures expire. */
export const NODE_AUTH_MAX_SKEW_S = 30;

const encoder = new TextEncoder();

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64Url(bytes: ArrayBuffer): string {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function hmacKey(secret: string): Promise<Awaited<ReturnType<typeof crypto.subtle.importKey>>> {
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/** The bytes the MAC covers. */
async function canonical(method: string, path: string, timestamp: string, nonce: string, body: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const digest = toHex(await crypto.subtle.digest('SHA-256', body));
  return encoder.encode(`${method.toUpperCase()}\n${path}\n${timestamp}\n${nonce}\n${digest}`);
}

export interface SignInput {
  method: string;
  /** URL path only, e.g. /v1/generate. */
  path: string;
  /** The exact body bytes (empty for GET). */
  body: string | Uint8Array<ArrayBuffer>;
  secret: string;
  /** Unix seconds; defaults to now. */
  now?: number;
  /** Defaults to a random UUID. */
  nonce?: string;
}

/** The three headers to add to the request. */
export async function signNodeRequest(input: SignInput): Promise<Record<string, string>> {
  const timestamp = String(input.now ?? Math.floor(Date.now() / 1000));
  const nonce = input.nonce ?? crypto.randomUUID();
  const body = typeof input.body === 'string' ? new Uint8Array(encoder.encode(input.body)) : input.body;
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(input.secret), await canonical(input.method, input.path, timestamp, nonce, body));
  return { [NODE_AUTH_HEADERS.timestamp]: timestamp, [NODE_AUTH_HEADERS.nonce]: nonce, [NODE_AUTH_HEADERS.signature]: toBase64Url(mac) };
}

export type VerifyResult = { ok: true; nonce: string; timestamp: number } | { ok: false; reason: string };

export interface VerifyInput {
  method: string;
  path: string;
  body: Uint8Array<ArrayBuffer>;
  /** Header lookup (case-insensitive, as Headers#get). */
  header(name: string): string | undefined | null;
  /** Accepted secrets: the current one first, then the previous one during a rotation. */
  secrets: readonly string[];
  /** Unix seconds. */
  now: number;
}

/**
 * Checks the signature against each accepted secret and the timestamp against the clock. Replay
 * (the nonce seen before) is the caller's check, since only it holds the memory of seen nonces.
 */
export async function verifyNodeRequest(input: VerifyInput): Promise<VerifyResult> {
  const timestamp = input.header(NODE_AUTH_HEADERS.timestamp);
  const nonce = input.header(NODE_AUTH_HEADERS.nonce);
  const signature = input.header(NODE_AUTH_HEADERS.signature);
  if (!timestamp || !nonce || !signature) return { ok: false, reason: 'request is not signed' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed signature timestamp' };
  if (nonce.length > 128) return { ok: false, reason: 'nonce too long' };
  const ts = Number(timestamp);
  if (Math.abs(input.now - ts) > NODE_AUTH_MAX_SKEW_S) return { ok: false, reason: `signature timestamp is more than ${NODE_AUTH_MAX_SKEW_S} s from the node's clock` };
  const mac = fromBase64Url(signature);
  if (!mac) return { ok: false, reason: 'malformed signature' };
  const data = await canonical(input.method, input.path, timestamp, nonce, input.body);
  for (const secret of input.secrets) {
    if (await crypto.subtle.verify('HMAC', await hmacKey(secret), mac, data)) return { ok: true, nonce, timestamp: ts };
  }
  return { ok: false, reason: 'bad signature' };
}
