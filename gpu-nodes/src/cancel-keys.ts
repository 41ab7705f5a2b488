import { timingSafeEqual } from 'node:crypto';

/**
 * The cancel_key of each generation in flight on the token-batch path. A /v1/cancel must carry its
 * request's key: the request id is visible to the edge's clients, the key only to the edge that
 * opened the request. A generation without a key can only be stopped by closing its stream.
 */
export class CancelKeys {
  private readonly keys = new Map<string, string | undefined>();

  open(requestId: string, key: string | undefined): void {
    this.keys.set(requestId, key);
  }

  close(requestId: string): void {
    this.keys.delete(requestId);
  }

  /** 'unknown' when the request is not in flight here; 'refused' when the key is missing or wrong. */
  check(requestId: string, given: string | undefined): 'ok' | 'unknown' | 'refused' {
    if (!this.keys.has(requestId)) return 'unknown';
    const key = this.keys.get(requestId);
    if (key === undefined || given === undefined) return 'refused';
    const a = Buffer.from(key);
    const b = Buffer.from(given);
    return a.length === b.length && timingSafeEqual(a, b) ? 'ok' : 'refused';
  }
}
