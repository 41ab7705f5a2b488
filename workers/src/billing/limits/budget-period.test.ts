import { describe, expect, it } from 'vitest';
import { isTimeZone, periodBounds } from './budget-period.ts';

const at = (iso: string) => Date.parse(iso);

describe('budget periods', () => {
  it('UTC days, ISO weeks (Monday) and months', () => {
    const now = at('2026-12-05T14:30:00Z'); // a Saturday
    expect(periodBounds('daily', 'UTC', now)).toEqual({ start: at('2026-12-05T00:00:00Z'), end: at('2026-12-06T00:00:00Z') });
    expect(periodBounds('weekly', 'UTC', now)).toEqual({ start: at('2026-11-30T00:00:00Z'), end: at('2026-12-07T00:00:00Z') });
    expect(periodBounds('monthly', 'UTC', now)).toEqual({ start: at('2026-12-01T00:00:00Z'), end: at('2027-01-01T00:00:00Z') });
    expect(periodBounds('total', 'UTC', now)).toEqual({ start: 0, end: null });
  });

  it('days start at local midnight in the key’s time zone', () => {
    // 23:30 UTC on the 5th is already the 6th in Tokyo (UTC+9) and still the 5th in New York (UTC-5).
    const now = at('2026-12-05T23:30:00Z');
    expect(periodBounds('daily', 'Asia/Tokyo', now)).toEqual({ start: at('2026-12-05T15:00:00Z'), end: at('2026-12-06T15:00:00Z') });
    expect(periodBounds('daily', 'America/New_York', now)).toEqual({ start: at('2026-12-05T05:00:00Z'), end: at('2026-12-06T05:00:00Z') });
    expect(periodBounds('daily', 'Asia/Kolkata', now).start).toBe(at('2026-12-05T18:30:00Z'));
  });

  it('a day with a daylight-saving change is 23 hours long', () => {
    // Europe/Paris moves from UTC+1 to UTC+2 on 2026-03-29.
    const { start, end } = periodBounds('daily', 'Europe/Paris', at('2026-03-29T12:00:00Z'));
    expect(start).toBe(at('2026-03-28T23:00:00Z'));
    expect(end).toBe(at('2026-03-29T22:00:00Z'));
    expect(periodBounds('monthly', 'Europe/Paris', at('2026-03-29T12:00:00Z')).end).toBe(at('2026-03-31T22:00:00Z'));
  });

  it('knows real zones only', () => {
    expect(isTimeZone('Europe/Paris')).toBe(true);
    expect(isTimeZone('Mars/Olympus_Mons')).toBe(false);
  });
});
