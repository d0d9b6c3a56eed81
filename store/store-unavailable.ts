/**
 * Why a store call could not reach its database:
 * - `pool_exhausted`: every pooled connection stayed busy for the whole acquire timeout.
 * - `unreachable`: opening a connection failed or timed out (refused, DNS, authentication,
 *   server starting up or shutting down, too many connections).
 * - `connection_lost`: an open connection broke while the call was running, so the call's
 *   outcome is unknown. The server rolls back a transaction that had not committed.
 * - `query_timeout`: the database did not complete one statement within the query timeout.
 * - `closed`: the store was closed before the call.
 */
export type StoreUnavailableCause =
  'pool_exhausted' | 'unreachable' | 'connection_lost' | 'query_timeout' | 'closed'

/**
 * A store call that failed because the database could not be reached in time, as opposed to a
 * call the database rejected (a constraint violation, invalid input). Callers respond to it
 * with 503 and may retry later. The message names the cause and the redacted database address.
 */
export class StoreUnavailableError extends Error {
  readonly code = 'store_unavailable'

  constructor(
    readonly reason: StoreUnavailableCause,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'StoreUnavailableError'
  }
}
