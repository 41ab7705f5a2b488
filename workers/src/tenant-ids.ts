/**
 * What a GPU node knows about the organization behind a request: two opaque ids, each an HMAC-SHA-256
 * of the org id under the pool's signing secret (node-client.ts), with a label per purpose:
 *
 *   tenant      the unit of fair scheduling on the node (gpu-nodes/src/engine/scheduler.ts)
 *   cache_salt  the prefix-cache namespace: prompts are only shared within one org
 *
 * Derived, not chosen: the node never sees org ids, and no caller can name another org's namespace
 * (a salt it could name would let it probe that org's prompts through `cached_tokens`). Both travel
 * only in the signed GenerateRequest. The same org always maps to the same ids under one secret, so
 * cache affinity survives across requests and edges; rotating the secret only costs cache hits.
 */

export interface TenantIds {
  tenant: string;
  cacheSalt: string;
}

const encoder = new TextEncoder();
/** Imported keys per secret: importKey costs more than the HMAC itself. Bounded by the pools' secrets. */
const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    keys.set(secret, key);
  }
  return key;
}

/** base64url of the first 16 bytes: 128 bits are plenty for a namespace and keep the ids short. */
async function mac(key: CryptoKey, label: string, orgId: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(`${label}\n${orgId}`))).subarray(0, 16);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function tenantIds(secret: string, orgId: string): Promise<TenantIds> {
  const key = await keyFor(secret);
  const [tenant, cacheSalt] = await Promise.all([mac(key, 'k2-node-tenant', orgId), mac(key, 'k2-node-cache-salt', orgId)]);
  return { tenant, cacheSalt };
}
