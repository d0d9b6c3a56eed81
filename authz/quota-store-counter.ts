import type { Logger } from '../log/logger.js'
import { PostgresStore } from '../store/postgres/postgres-store.js'
import type { Store } from '../store/store.js'
import { MemoryQuotaCounter, type QuotaCharge, type QuotaCounter } from './quota-counter.js'

/** The store operations a shared quota counter needs; PostgresStore.quotas provides them. */
export interface QuotaLedger {
  charge(charges: readonly QuotaCharge[], nowMs: number): Promise<number[]>
  sweep(nowMs: number): Promise<number>
}

/** How often idle counters are deleted from the store. */
const SWEEP_INTERVAL_MS = 60_000

/**
 * A quota counter in the shared store, so that every gateway node charges the same counters:
 * N requests spread over any number of nodes meet one limit. The semantics are those of
 * MemoryQuotaCounter (a sliding log, the same waits and so the same Retry-After), and each
 * charge is one atomic statement. A store that is unavailable makes `charge` throw
 * StoreUnavailableError, which authz turns into a 503 deny.
 */
export class StoreQuotaCounter implements QuotaCounter {
  private lastSweepMs = 0

  constructor(
    private readonly ledger: QuotaLedger,
    private readonly logger?: Logger,
  ) {}

  async charge(charges: readonly QuotaCharge[], nowMs: number): Promise<number[]> {
    const waits = await this.ledger.charge(charges, nowMs)
    if (nowMs - this.lastSweepMs >= SWEEP_INTERVAL_MS) {
      this.lastSweepMs = nowMs
      this.ledger.sweep(nowMs).catch((error: unknown) => {
        this.logger?.warn({ err: error }, 'deleting idle quota counters failed; retrying later')
      })
    }
    return waits
  }
}

/**
 * Returns the quota counter for a store: the shared counter on PostgreSQL, where several nodes
 * may run, and the in-memory counter on SQLite, which serves one node.
 */
export function quotaCounterFor(store: Pick<Store, 'close'>, logger?: Logger): QuotaCounter {
  if (store instanceof PostgresStore) return new StoreQuotaCounter(store.quotas, logger)
  return new MemoryQuotaCounter()
}
