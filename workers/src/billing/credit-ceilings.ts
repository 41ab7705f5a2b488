/**
 * The largest amounts of credit the platform holds, in integer micro-dollars.
 *
 * Every amount of money is a JavaScript number on its way through the edge (JSON, the org's object,
 * D1 results), so it is exact only below 2^53 (≈ 9.007 × 10^15 µ$). The ceilings sit three orders
 * of magnitude below that: a balance is at most 10^13 µ$ ($10 000 000), so a sum of up to ~900
 * balances' worth of grants, debits and reservations (a month's statement lines, the holds of every
 * request in flight) still adds up exactly. One grant is at most 10^12 µ$ ($1 000 000): a Stripe
 * top-up is at most $10 000 (stripe.ts), an admin grant is a deliberate act of that size or less.
 *
 * Only a grant raises a balance (settles, refunds and expiries take from it), so refusing a grant
 * that would pass the balance ceiling keeps every balance under it.
 */

/** The largest single grant: $1 000 000. */
export const MAX_GRANT_MICROS = 1_000_000_000_000;
/** The largest balance a grant may leave: $10 000 000. */
export const MAX_BALANCE_MICROS = 10_000_000_000_000;

/** Why `amountMicros` cannot be granted as one grant, or null when it can. */
export function grantAmountRefusal(amountMicros: number): string | null {
  if (!Number.isSafeInteger(amountMicros) || amountMicros <= 0) return `a grant must be a positive whole number of micro-dollars, got ${amountMicros}`;
  if (amountMicros > MAX_GRANT_MICROS) return `a grant is at most ${MAX_GRANT_MICROS} µ$ ($1,000,000), got ${amountMicros}`;
  return null;
}

/** Why a grant of `amountMicros` onto `balanceMicros` cannot be applied, or null when it can. */
export function grantRefusal(amountMicros: number, balanceMicros: number): string | null {
  const amount = grantAmountRefusal(amountMicros);
  if (amount) return amount;
  if (balanceMicros + amountMicros > MAX_BALANCE_MICROS) {
    return `a balance is at most ${MAX_BALANCE_MICROS} µ$ ($10,000,000): ${balanceMicros} µ$ + ${amountMicros} µ$ would pass it`;
  }
  return null;
}
