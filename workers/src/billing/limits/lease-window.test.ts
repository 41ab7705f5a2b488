import { describe, expect, it } from 'vitest';
import { LeaseWindow, WINDOW_MS, type Lease } from './lease-window.ts';
import type { Limits } from './plans.ts';

/** A window whose store is a plain map, so the test can see exactly what would be persisted. */
function newWindow() {
  const stored = new Map<string, Lease>();
  const window = new LeaseWindow([], { put: (l) => stored.set(l.id, { ...l }), delete: (id) => stored.delete(id) });
  return { window, stored };
}

const T0 = 1_700_000_000_000;
const TTL = 10 * 60_000;
const wide: Limits = { rpm: 1_000, tpm: 1_000_000, concurrency: 1_000 };

describe('LeaseWindow', () => {
  it('admits exactly rpm requests in a window and says when the next one fits', () => {
    const { window } = newWindow();
    const limits = { ...wide, rpm: 3 };
    for (let i = 0; i < 3; i++) expect(window.tryAcquire(`r${i}`, 1, limits, T0 + i * 1000, TTL).ok).toBe(true);
    const refused = window.tryAcquire('r3', 1, limits, T0 + 5_000, TTL);
    expect(refused).toMatchObject({ ok: false, reason: 'requests', tooLarge: false });
    // The oldest lease (T0) leaves the window at T0 + 60 s.
    if (!refused.ok) expect(refused.retryAfterMs).toBe(T0 + WINDOW_MS - (T0 + 5_000));
    expect(window.tryAcquire('r3', 1, limits, T0 + WINDOW_MS - 1, TTL).ok).toBe(false);
    expect(window.tryAcquire('r3', 1, limits, T0 + WINDOW_MS, TTL).ok).toBe(true);
  });

  it('counts tokens at admission and corrects them to the real count on finish', () => {
    const { window } = newWindow();
    const limits = { ...wide, tpm: 1_000 };
    expect(window.tryAcquire('a', 800, limits, T0, TTL).ok).toBe(true);
    const refused = window.tryAcquire('b', 300, limits, T0 + 1, TTL);
    expect(refused).toMatchObject({ ok: false, reason: 'tokens' });
    if (!refused.ok) expect(refused.retryAfterMs).toBe(WINDOW_MS - 1);
    // 'a' really used 100 tokens (short answer): 900 free again.
    window.finish('a', 100);
    expect(window.tryAcquire('b', 300, limits, T0 + 2, TTL).ok).toBe(true);
    expect(window.state(limits, T0 + 2)).toMatchObject({ remainingTokens: 600, remainingRequests: 998 });
  });

  it('marks a request larger than the whole per-minute budget as never admissible', () => {
    const { window } = newWindow();
    expect(window.tryAcquire('big', 2_000, { ...wide, tpm: 1_000 }, T0, TTL)).toMatchObject({
      ok: false,
      reason: 'tokens',
      tooLarge: true,
    });
  });

  it('limits concurrency until a request finishes or its lease expires', () => {
    const { window } = newWindow();
    const limits = { ...wide, concurrency: 2 };
    expect(window.tryAcquire('a', 1, limits, T0, 1_000).ok).toBe(true);
    expect(window.tryAcquire('b', 1, limits, T0, TTL).ok).toBe(true);
    expect(window.tryAcquire('c', 1, limits, T0 + 1, TTL)).toMatchObject({ ok: false, reason: 'concurrency' });
    window.finish('b', null);
    expect(window.tryAcquire('c', 1, limits, T0 + 2, TTL).ok).toBe(true);
    expect(window.tryAcquire('d', 1, limits, T0 + 3, TTL).ok).toBe(false);
    // 'a' crashed: past its expiry it stops counting as in flight.
    expect(window.tryAcquire('d', 1, limits, T0 + 1_000, TTL).ok).toBe(true);
    expect(window.state(limits, T0 + 1_000).inFlight).toBe(2);
  });

  it('is idempotent per id and forgets a cancelled admission entirely', () => {
    const { window, stored } = newWindow();
    const limits = { ...wide, rpm: 1 };
    expect(window.tryAcquire('a', 5, limits, T0, TTL)).toMatchObject({ ok: true, duplicate: false });
    expect(window.tryAcquire('a', 5, limits, T0 + 1, TTL)).toMatchObject({ ok: true, duplicate: true });
    expect(window.cancel('a')).toBe(true);
    expect(stored.size).toBe(0);
    expect(window.tryAcquire('b', 5, limits, T0 + 2, TTL).ok).toBe(true);
  });

  it('reports reset times and drops finished leases that left the window', () => {
    const { window, stored } = newWindow();
    window.tryAcquire('a', 10, wide, T0, TTL);
    window.tryAcquire('b', 0, wide, T0 + 10_000, TTL);
    expect(window.state(wide, T0 + 20_000)).toMatchObject({
      resetRequestsMs: WINDOW_MS - 10_000, // when 'b' leaves
      resetTokensMs: WINDOW_MS - 20_000, // when 'a' (the newest with tokens) leaves
    });
    window.finish('a', 10);
    window.finish('b', 0);
    window.prune(T0 + WINDOW_MS + 10_000);
    expect([...stored.keys()]).toEqual([]);
    expect(window.state(wide, T0 + WINDOW_MS + 10_000)).toMatchObject({ remainingRequests: 1_000, resetRequestsMs: 0 });
  });
});
