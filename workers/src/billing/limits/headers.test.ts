import { describe, expect, it } from 'vitest';
import { formatDuration, rateLimitHeaders, retryAfterSeconds } from './headers.ts';
import type { WindowState } from './lease-window.ts';

const state = (over: Partial<WindowState>): WindowState => ({
  limits: { rpm: 100, tpm: 10_000, concurrency: 10 },
  remainingRequests: 50,
  remainingTokens: 5_000,
  resetRequestsMs: 1_000,
  resetTokensMs: 2_000,
  inFlight: 0,
  ...over,
});

describe('rate-limit headers', () => {
  it('formats durations the way OpenAI does', () => {
    expect(formatDuration(0)).toBe('0ms');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(1_000)).toBe('1s');
    expect(formatDuration(1_500)).toBe('1.5s');
    expect(formatDuration(360_000)).toBe('6m0s');
    expect(formatDuration(3_723_000)).toBe('1h2m3s');
  });

  it('rounds Retry-After up to whole seconds, at least 1', () => {
    expect(retryAfterSeconds(0)).toBe('1');
    expect(retryAfterSeconds(1_001)).toBe('2');
    expect(retryAfterSeconds(60_000)).toBe('60');
  });

  it('reports, per dimension, the window with fewer remaining', () => {
    const key = state({ limits: { rpm: 10, tpm: 100_000, concurrency: 5 }, remainingRequests: 3, remainingTokens: 90_000 });
    const org = state({ limits: { rpm: 1_000, tpm: 20_000, concurrency: 50 }, remainingRequests: 900, remainingTokens: 1_000, resetTokensMs: 30_000 });
    expect(rateLimitHeaders([key, org])).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '3',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '20000',
      'x-ratelimit-remaining-tokens': '1000',
      'x-ratelimit-reset-tokens': '30s',
    });
  });
});
