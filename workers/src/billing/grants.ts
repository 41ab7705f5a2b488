/**
 * Credit granted to an organization, by whatever pays for it (an admin grant, a Stripe top-up):
 * one path, so every grant is written and mirrored the same way. The ledger row is written first,
 * unique on its entry id when one is given, then the org's object applies that row once, by its
 * id. A failure between the two is repaired by repeating the call with the same entry id: the row
 * is found, not written again, and the object applies it if it has not yet.
 */
import { creditBalance, grantCredit } from './ledger.ts';
import { orgAccount } from './request-billing.ts';

export interface Grant {
  ledgerId: number;
  /** The org's ledger balance after the grant. */
  balanceMicros: number;
}

/**
 * Grants `amountMicros` to `orgId`. `entryId` makes the grant idempotent: "grant:<Idempotency-Key>"
 * for admin grants, "stripe:<event id>" for top-ups.
 */
export async function grantToOrg(env: Env, orgId: string, amountMicros: number, note: string, entryId?: string): Promise<Grant> {
  const ledgerId = await grantCredit(env.DB, orgId, amountMicros, note, entryId);
  await orgAccount(env, orgId).grant(orgId, ledgerId, amountMicros);
  return { ledgerId, balanceMicros: await creditBalance(env.DB, orgId) };
}
