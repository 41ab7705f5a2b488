/**
 * Credit granted to an organization, by whatever pays for it (an admin grant, a Stripe top-up):
 * one path, so every grant is written, bounded and mirrored the same way. The amount is checked
 * against the per-grant ceiling (credit-ceilings.ts); the ledger row is written first, only if the
 * org's ledger balance stays under the balance ceiling, unique on its entry id when one is given;
 * then the org's object applies that row once, by its id. A refused grant leaves no ledger row and
 * nothing in the object. A failure between the two writes is repaired by repeating the call with
 * the same entry id: the row is found, not written again, and the object applies it if it has not yet.
 */
import { CreditCeilingError } from '../errors.ts';
import { grantAmountRefusal, grantRefusal } from './credit-ceilings.ts';
import { creditBalance, grantCredit } from './ledger.ts';
import { orgAccount } from './request-billing.ts';

export interface Grant {
  ledgerId: number;
  /** The org's ledger balance after the grant. */
  balanceMicros: number;
}

/**
 * Grants `amountMicros` to `orgId`. `entryId` makes the grant idempotent: "grant:<Idempotency-Key>"
 * for admin grants, "stripe:<event id>" for top-ups. Throws CreditCeilingError (400), having
 * written nothing, when the amount is not a whole number within the per-grant ceiling or the
 * balance would pass its ceiling.
 */
export async function grantToOrg(env: Env, orgId: string, amountMicros: number, note: string, entryId?: string): Promise<Grant> {
  const refusal = grantAmountRefusal(amountMicros);
  if (refusal) throw new CreditCeilingError(refusal);
  const ledgerId = await grantCredit(env.DB, orgId, amountMicros, note, entryId);
  if (ledgerId === null) {
    throw new CreditCeilingError(grantRefusal(amountMicros, await creditBalance(env.DB, orgId)) ?? 'the balance ceiling refused this grant');
  }
  const applied = await orgAccount(env, orgId).grant(orgId, ledgerId, amountMicros);
  // Cannot happen while the object's balance is at most the ledger's; if it does, the row stands
  // unapplied and reconciliation reports the drift.
  if (applied.refusal) throw new Error(`ledger row ${ledgerId} written but refused by the org's object: ${applied.refusal}`);
  return { ledgerId, balanceMicros: await creditBalance(env.DB, orgId) };
}
