/**
 * Budget periods: where the period containing an instant starts and ends, in an IANA time zone.
 * Days start at local midnight, weeks on Monday (ISO 8601), months on the 1st; "total" never resets.
 * A day with a daylight-saving change is 23 or 25 hours long, as the key holder's clock says.
 *
 * Built on Intl.DateTimeFormat (the runtime's time zone database), so no zone data ships with us.
 */

export const BUDGET_PERIODS = ['daily', 'weekly', 'monthly', 'total'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

export interface PeriodBounds {
  /** Epoch ms of the period's first instant (0 for "total"). */
  start: number;
  /** Epoch ms of the next period's first instant; null for "total". */
  end: number | null;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** True when the runtime knows `timeZone` ("UTC", "Europe/Paris", ...). */
export function isTimeZone(timeZone: string): boolean {
  try {
    format(timeZone);
    return true;
  } catch {
    // RangeError: not a zone this runtime knows; the caller answers 400.
    return false;
  }
}

/** The wall clock in `timeZone` at `instant`, as fields. */
function wallClock(timeZone: string, instant: number) {
  const fields: Record<string, number> = {};
  for (const p of format(timeZone).formatToParts(new Date(instant))) if (p.type !== 'literal') fields[p.type] = Number(p.value);
  return { year: fields.year, month: fields.month, day: fields.day, hour: fields.hour, minute: fields.minute, second: fields.second };
}

/** Local time minus UTC at `instant`, in ms (+3 600 000 for Paris in winter). */
function offsetMs(timeZone: string, instant: number): number {
  const w = wallClock(timeZone, instant);
  const whole = instant - (((instant % 1000) + 1000) % 1000);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - whole;
}

/**
 * The instant local midnight starts on (year, month, day) in `timeZone` (fields may overflow, as in
 * Date.UTC). Two passes: the offset at the first guess can differ from the offset at midnight when
 * a daylight-saving change falls in between.
 */
function localMidnight(timeZone: string, year: number, month: number, day: number): number {
  const naive = Date.UTC(year, month - 1, day);
  const first = naive - offsetMs(timeZone, naive);
  return naive - offsetMs(timeZone, first);
}

export function periodBounds(period: BudgetPeriod, timeZone: string, now: number): PeriodBounds {
  if (period === 'total') return { start: 0, end: null };
  const { year, month, day } = wallClock(timeZone, now);
  if (period === 'daily') return { start: localMidnight(timeZone, year, month, day), end: localMidnight(timeZone, year, month, day + 1) };
  if (period === 'weekly') {
    // getUTCDay of the local date: 0 = Sunday; days back to Monday.
    const back = (new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 6) % 7;
    return { start: localMidnight(timeZone, year, month, day - back), end: localMidnight(timeZone, year, month, day - back + 7) };
  }
  return { start: localMidnight(timeZone, year, month, 1), end: localMidnight(timeZone, year, month + 1, 1) };
}
