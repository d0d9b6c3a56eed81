import pg from 'pg'
import type { Logger } from '../../log/logger.js'
import { StoreUnavailableError } from '../store-unavailable.js'
import { redactUrl } from './connection-url.js'
import { describeError, toStoreError } from './postgres-errors.js'

/** A schema name that needs no quoting: lowercase letters, digits and underscores. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/** Default bound on one statement, lock waits included. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000

/** Settings of the connection pool; the config's store.postgres section in milliseconds. */
export interface PostgresPoolOptions {
  /** postgres:// or postgresql:// URL; its password never appears in errors or logs. */
  readonly url: string
  /** Maximum open connections of this process. */
  readonly poolSize: number
  /** Bound on opening one connection (TCP, TLS, startup and authentication). */
  readonly connectTimeoutMs: number
  /** Bound on the wait for a pooled connection, opening a new one included. */
  readonly acquireTimeoutMs: number
  /** Bound on one statement; the server cancels it and the client gives up shortly after. */
  readonly queryTimeoutMs?: number
  /** Schema that contains the tables. Absent: the server's search_path (normally public). */
  readonly schema?: string
  readonly logger?: Logger
}

const TIMESTAMPTZ_OID = 1184
const INT8_OID = 20
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID) as (text: string) => Date

/**
 * Type parsers of the store's connections: timestamptz as the ISO 8601 string the store
 * interface uses (millisecond precision, UTC), and int8 as a number, which is exact for sequence
 * numbers and counts below 2^53.
 */
const storeTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === TIMESTAMPTZ_OID) return (text: string) => parseTimestamptz(text).toISOString()
    if (oid === INT8_OID) return (text: string) => Number(text)
    return pg.types.getTypeParser(oid, format ?? 'text')
  }) as typeof pg.types.getTypeParser,
}

/** Releases the connection of an acquire that timed out, as soon as the connection arrives. */
function releaseLate(pending: Promise<pg.PoolClient>): void {
  pending.then(
    (client) => client.release(),
    () => undefined,
  )
}

/**
 * The connection pool of a PostgreSQL store. Every call gets a connection within the acquire
 * timeout or fails with StoreUnavailableError naming the cause, and errors that mean the
 * database is unavailable are converted to that class as well.
 */
export class PostgresPool {
  /** The database URL with its password replaced, for messages. */
  readonly address: string
  readonly schema: string | undefined
  private readonly pool: pg.Pool
  private readonly options: PostgresPoolOptions
  /** Connections that calls hold right now. */
  private held = 0
  private closed = false

  constructor(options: PostgresPoolOptions) {
    if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema)) {
      throw new TypeError(
        `schema '${options.schema}' is invalid; use lowercase letters, digits and underscores`,
      )
    }
    this.options = options
    this.address = redactUrl(options.url)
    this.schema = options.schema
    this.pool = new pg.Pool(this.poolConfig())
    // A pooled idle connection that breaks (a server restart) emits 'error'; the pool drops it
    // and opens a new one on demand, so this only logs.
    this.pool.on('error', (error) => {
      options.logger?.warn(
        { database: this.address, err: describeError(error) },
        'idle PostgreSQL connection failed; the pool replaces it',
      )
    })
  }

  private poolConfig(): pg.PoolConfig {
    const { connectTimeoutMs, acquireTimeoutMs } = this.options
    const queryTimeoutMs = this.options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS
    const settings = ['-c TimeZone=UTC']
    if (this.schema !== undefined) settings.push(`-c search_path=${this.schema}`)
    // pg-pool applies connectionTimeoutMillis to the queue wait; each client gets the
    // shorter connect timeout for opening its own connection.
    const Client = class extends pg.Client {
      constructor(config?: string | pg.ClientConfig) {
        super({ ...(config as pg.ClientConfig), connectionTimeoutMillis: connectTimeoutMs })
      }
    }
    return {
      connectionString: this.options.url,
      max: this.options.poolSize,
      connectionTimeoutMillis: acquireTimeoutMs,
      Client,
      options: settings.join(' '),
      application_name: 'hsmgate',
      statement_timeout: queryTimeoutMs,
      // The client gives up a little after the server would have cancelled the statement, for
      // a server or network that stopped responding altogether.
      query_timeout: queryTimeoutMs + 2000,
      idle_in_transaction_session_timeout: queryTimeoutMs,
      keepAlive: true,
      types: storeTypes,
    }
  }

  /**
   * Runs `work` on one pooled connection. Throws StoreUnavailableError when no connection is
   * available within the acquire timeout or the database fails during the call. A connection
   * whose call failed that way is closed instead of returned to the pool.
   */
  async withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.acquire()
    // pg-pool listens for 'error' only on idle clients. A connection that the server ends
    // while the client is checked out (a server shutdown between two statements) emits
    // 'error' on the client, which would end the process without a listener. The statement
    // in progress, or the next one, rejects by itself; the broken client is then discarded.
    let broken: Error | undefined
    const onError = (error: Error): void => {
      broken = error
    }
    client.on('error', onError)
    try {
      const result = await work(client)
      client.release(broken)
      return result
    } catch (error) {
      const mapped = toStoreError(error, 'query', this.address)
      client.release(mapped instanceof StoreUnavailableError ? mapped : broken)
      throw mapped
    } finally {
      client.off('error', onError)
      this.held--
    }
  }

  /** Runs one statement and returns its rows. */
  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    const result = await this.withClient((client) => client.query(sql, params))
    return result.rows as Row[]
  }

  /** Runs one statement and returns the number of rows it changed. */
  async execute(sql: string, params: unknown[] = []): Promise<number> {
    const result = await this.withClient((client) => client.query(sql, params))
    return result.rowCount ?? 0
  }

  /**
   * Runs `work` in one READ COMMITTED transaction and commits it, or rolls it back when `work`
   * throws. A commit that fails because the connection broke leaves the outcome unknown; the
   * StoreUnavailableError then has reason 'connection_lost'.
   */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.withClient(async (client) => {
      await client.query('BEGIN')
      let result: T
      try {
        result = await work(client)
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
      await client.query('COMMIT')
      return result
    })
  }

  /** Closes every connection; later calls fail with StoreUnavailableError 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }

  private async acquire(): Promise<pg.PoolClient> {
    if (this.closed) {
      throw new StoreUnavailableError('closed', `store unavailable: ${this.address} was closed`)
    }
    const pending = this.pool.connect()
    let timer: NodeJS.Timeout | undefined
    // pg-pool starts a new connect timer when a queued request finally gets a free slot, so
    // this timer is the bound on the whole wait.
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), this.options.acquireTimeoutMs)
    })
    try {
      const client = await Promise.race([pending, expired])
      if (client === 'expired') {
        releaseLate(pending)
        throw this.acquireTimeout()
      }
      this.held++
      return client
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error
      if (error instanceof Error && error.message === 'timeout exceeded when trying to connect') {
        throw this.acquireTimeout()
      }
      throw toStoreError(error, 'acquire', this.address)
    } finally {
      clearTimeout(timer)
    }
  }

  /** Names pool exhaustion when every connection is held by a call, else an unreachable server. */
  private acquireTimeout(): StoreUnavailableError {
    const ms = this.options.acquireTimeoutMs
    if (this.held >= this.options.poolSize) {
      return new StoreUnavailableError(
        'pool_exhausted',
        `store unavailable: all ${this.options.poolSize} connections to ${this.address} stayed ` +
          `busy for ${ms} ms; raise store.postgres.pool_size or store.postgres.acquire_timeout`,
      )
    }
    return new StoreUnavailableError(
      'unreachable',
      `store unavailable: no connection to PostgreSQL at ${this.address} within ${ms} ms; ` +
        'check that the server runs and accepts connections from this host',
    )
  }
}
