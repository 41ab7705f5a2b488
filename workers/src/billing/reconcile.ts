/**
 * Reconciliation: for every org, the balance its OrgAccount object holds against the sum of its D1
 * ledger (grants − debits). Once all of an org's requests have settled and their usage rows are
 * written, the two are equal; anything else is drift, reported with the numbers to chase it.
 * Run by `GET /admin/reconcile` and by the scheduled handler (which logs what drifted).
 */
import { database, listOrganizationIds } from '../db/queries.ts';
import { ledgerBalance, ledgerBalances } from './ledger.ts';
import { orgAccount } from './request-billing.ts';

export interface OrgReconciliation {
  orgId: string;
  ledgerMicros: number;
  objectMicros: number;
  /** object − ledger: positive means the object thinks the org has more money than the ledger says. */
  driftMicros: number;
  /** Requests still holding credit: while > 0 the two may legitimately differ by in-flight charges. */
  openReservations: number;
}

export interface Reconciliation {
  checkedAt: number;
  orgs: OrgReconciliation[];
  /** Orgs whose drift is not 0. */
  drifted: OrgReconciliation[];
}

/** How many org objects are asked at once. */
const CONCURRENCY = 16;

export async function reconcile(env: Env, orgIds?: string[]): Promise<Reconciliation> {
  const ids = orgIds ?? (await listOrganizationIds(database(env.DB)));
  // One org (the fault tests, ?org_id=): its own sum; every org: one grouped query.
  const ledger =
    orgIds && orgIds.length === 1
      ? new Map([[orgIds[0], (await ledgerBalance(env.DB, orgIds[0])).balanceMicros]])
      : await ledgerBalances(env.DB);
  const orgs: OrgReconciliation[] = [];
  for (let i = 0; i < ids.length; i += CONCURRENCY) {
    const slice = ids.slice(i, i + CONCURRENCY);
    orgs.push(
      ...(await Promise.all(
        slice.map(async (orgId) => {
          const mirror = await orgAccount(env, orgId).mirror(orgId);
          const ledgerMicros = ledger.get(orgId) ?? 0;
          return {
            orgId,
            ledgerMicros,
            objectMicros: mirror.balanceMicros,
            driftMicros: mirror.balanceMicros - ledgerMicros,
            openReservations: mirror.openReservations,
          };
        }),
      )),
    );
  }
  return { checkedAt: Date.now(), orgs, drifted: orgs.filter((o) => o.driftMicros !== 0) };
}
