import { StoreUnavailableError, type StoreUnavailableCause } from '../store-unavailable.js'

/** Node socket errors that mean the server cannot be reached or the connection broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
])

/**
 * Tells whether a SQLSTATE means the server is not available: class 08 (connection exception),
 * 53300 too_many_connections, 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
 * cannot_connect_now, 3D000 invalid_catalog_name (no such database), and 28000/28P01
 * authentication failures. A retry cannot fix the last three, but the store is unusable all
 * the same.
 */
function isUnavailableState(code: string): boolean {
  return (
    code.startsWith('08') ||
    ['53300', '57P01', '57P02', '57P03', '28000', '28P01', '3D000'].includes(code)
  )
}

/** The phase of a store call in which an error happened. */
export type CallPhase = 'acquire' | 'query'

/**
 * Returns the cause of an unavailable database for a pg or socket error, or undefined when the
 * database responded and rejected the statement. node-postgres reports timeouts and broken
 * connections as plain Error objects without a code, so those cases match on the message text
 * that pg 8.23 uses.
 */
export function unavailableCause(
  error: unknown,
  phase: CallPhase,
): StoreUnavailableCause | undefined {
  if (!(error instanceof Error)) return undefined
  const code = (error as { code?: unknown }).code
  const lost: StoreUnavailableCause = phase === 'acquire' ? 'unreachable' : 'connection_lost'
  if (typeof code === 'string') {
    if (code === '57014') return 'query_timeout'
    if (NETWORK_CODES.has(code)) return lost
    if (isUnavailableState(code)) return lost
  }
  if (error.message === 'Query read timeout') return 'query_timeout'
  if (/^Connection terminated|^timeout expired$|not queryable/.test(error.message)) return lost
  if (error.cause !== undefined) return unavailableCause(error.cause, phase)
  return undefined
}

/** Describes a pg error for a message: its SQLSTATE or socket code and its text. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message
}

/** Operator actions for each SQLSTATE or socket code that makes the store unusable. */
const FIXES: ReadonlyArray<[readonly string[], string]> = [
  [
    ['28000'],
    'create the role and its database, or allow this host in pg_hba.conf, or correct the user ' +
      'in store.postgres.url',
  ],
  [['28P01'], "correct the password in store.postgres.url or set the role's password"],
  [['3D000'], 'create the database, or correct the database name in store.postgres.url'],
  [
    ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'],
    'start PostgreSQL, or correct the host and port in store.postgres.url',
  ],
  [['ENOTFOUND', 'EAI_AGAIN'], 'correct the host name in store.postgres.url'],
  [['53300'], "raise the server's max_connections or lower store.postgres.pool_size"],
  [['57P03'], 'wait until the server has started, then retry'],
]

/**
 * Returns what to do about a pg or socket error that prevents connecting, or undefined when
 * the error has no known fix. Follows `cause` links, because pg wraps some socket errors.
 */
export function connectionFix(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code
    const fix = FIXES.find(([codes]) => typeof code === 'string' && codes.includes(code))
    if (fix !== undefined) return fix[1]
    current = current.cause
  }
  return undefined
}

/**
 * Converts an error of a store call to StoreUnavailableError when the database was not
 * available, and returns any other error unchanged. A failed connect gets the fix appended.
 */
export function toStoreError(error: unknown, phase: CallPhase, address: string): unknown {
  if (error instanceof StoreUnavailableError) return error
  const cause = unavailableCause(error, phase)
  if (cause === undefined) return error
  const what =
    cause === 'query_timeout'
      ? `PostgreSQL at ${address} did not answer a statement in time`
      : cause === 'connection_lost'
        ? `the connection to PostgreSQL at ${address} broke during a store call`
        : `cannot connect to PostgreSQL at ${address}`
  const fix = cause === 'unreachable' ? connectionFix(error) : undefined
  const message = `store unavailable: ${what} (${describeError(error)})`
  return new StoreUnavailableError(cause, fix === undefined ? message : `${message}; ${fix}`, {
    cause: error,
  })
}
