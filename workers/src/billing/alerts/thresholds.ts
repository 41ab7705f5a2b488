/**
 * Alert thresholds and the crossing rule. An alert fires once when a value crosses its threshold
 * and re-arms only when the value is back on the safe side, so a balance hovering below the line
 * sends one webhook, not one per request:
 *   balance:    fires when balance < balanceBelowMicros; re-arms when balance ≥ it (a top-up).
 *   key budget: fires when spent ≥ percent% of the limit in a period; each period arms afresh,
 *               and a raised limit that puts spend back under re-arms it.
 */
export interface AlertThresholds {
  /** Alert when the org's balance falls below this (µ$); null: off. */
  balanceBelowMicros: number | null;
  /** Alert when a key has spent this percentage of its budget; null: off. */
  keyBudgetPercent: number | null;
}

/** spent ≥ percent% of limit, in integers: spent × 100 ≥ limit × percent. */
export function budgetThresholdReached(spentMicros: number, limitMicros: number, percent: number): boolean {
  return spentMicros * 100 >= limitMicros * percent;
}
