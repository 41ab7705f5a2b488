/**
 * The OpenAI rate-limit response headers, from the window states of the key and the org:
 *   x-ratelimit-limit-requests / -remaining-requests / -reset-requests, the same for tokens,
 *   and Retry-After (whole seconds, at least 1) on a 429.
 * Where both the key's and the org's windows apply, each dimension reports the tighter one
 * (fewer remaining), which is the one a client will hit first. Where a daily token limit applies
 * (daily-tokens.ts), x-ratelimit-limit-tokens-day / -remaining-tokens-day / -reset-tokens-day
 * report the tighter of the key's and the org's days.
 */
import type { DailyState } from './daily-tokens.ts';
import type { WindowState } from './lease-window.ts';

export function rateLimitHeaders(states: WindowState[], daily: DailyState[] = []): Record<string, string> {
  if (states.length === 0) return {};
  return { ...windowHeaders(states), ...dailyHeaders(daily) };
}

function dailyHeaders(daily: DailyState[]): Record<string, string> {
  if (daily.length === 0) return {};
  const day = daily.reduce((a, b) => (b.remaining < a.remaining ? b : a));
  return {
    'x-ratelimit-limit-tokens-day': String(day.limit),
    'x-ratelimit-remaining-tokens-day': String(day.remaining),
    'x-ratelimit-reset-tokens-day': formatDuration(day.resetMs),
  };
}

function windowHeaders(states: WindowState[]): Record<string, string> {
  const requests = states.reduce((a, b) => (b.remainingRequests < a.remainingRequests ? b : a));
  const tokens = states.reduce((a, b) => (b.remainingTokens < a.remainingTokens ? b : a));
  return {
    'x-ratelimit-limit-requests': String(requests.limits.rpm),
    'x-ratelimit-remaining-requests': String(requests.remainingRequests),
    'x-ratelimit-reset-requests': formatDuration(requests.resetRequestsMs),
    'x-ratelimit-limit-tokens': String(tokens.limits.tpm),
    'x-ratelimit-remaining-tokens': String(tokens.remainingTokens),
    'x-ratelimit-reset-tokens': formatDuration(tokens.resetTokensMs),
  };
}

export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/** OpenAI's duration style: "250ms", "1s", "1.5s", "6m0s", "1h2m3s". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms));
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = (total % 60_000) / 1000;
  const s = `${Number(seconds.toFixed(3))}s`;
  if (hours > 0) return `${hours}h${minutes}m${s}`;
  if (minutes > 0) return `${minutes}m${s}`;
  return s;
}
