import type { PostgresPool } from './postgres-pool.js'

/** One counter of a charge, as quota_charge() takes it. */
export interface LedgerCharge {
  readonly counter: string
  readonly limit: number
  readonly windowMs: number
}

/**
 * Sliding-log quota counters in PostgreSQL, shared by every gateway node on the database. Each
 * counter is one row with the request times of its window (at most `limit` of them), and
 * quota_charge() (migration 7) checks and records all counters of a charge in one statement.
 */
export class PostgresQuotaLedger {
  constructor(private readonly pool: PostgresPool) {}

  /**
   * Charges one request at `nowMs` to every counter, all or nothing, in one atomic statement;
   * returns per counter the milliseconds until it has room, or zeros when the request was
   * recorded. Throws StoreUnavailableError when the database is unavailable.
   */
  async charge(charges: readonly LedgerCharge[], nowMs: number): Promise<number[]> {
    if (charges.length === 0) return []
    const rows = await this.pool.query<{ waits: number[] }>(
      'SELECT quota_charge($1::text[], $2::integer[], $3::bigint[], $4::bigint) AS waits',
      [
        charges.map((charge) => charge.counter),
        charges.map((charge) => charge.limit),
        charges.map((charge) => charge.windowMs),
        Math.floor(nowMs),
      ],
    )
    // int8 array elements arrive as text; the counters' values are far below 2^53.
    return (rows[0]?.waits ?? []).map(Number)
  }

  /**
   * Deletes up to `limit` counters whose every request left its window before `nowMs`, skipping
   * rows that a charge holds. Returns how many it deleted.
   */
  sweep(nowMs: number, limit = 1000): Promise<number> {
    return this.pool.execute(
      `DELETE FROM quota_windows WHERE counter IN (
         SELECT counter FROM quota_windows WHERE expires_ms <= $1
         ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [Math.floor(nowMs), limit],
    )
  }
}
