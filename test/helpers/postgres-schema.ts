import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { PostgresPoolOptions } from '../../store/postgres/index.js'

/**
 * The shared test database: PostgreSQL on 127.0.0.1:5432 with trust authentication and a
 * database `test`, as the build machines provide it. HSMGATE_TEST_POSTGRES_URL overrides it.
 */
export const TEST_POSTGRES_URL =
  process.env.HSMGATE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A private schema in the test database; `drop` removes it with everything in it. */
export interface TestSchema {
  readonly url: string
  readonly schema: string
  /** Store options for this schema: a small pool and short timeouts, overridable. */
  options(overrides?: Partial<PostgresPoolOptions>): PostgresPoolOptions
  /** Runs one statement in this schema on a connection of its own and returns the rows. */
  query<Row extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<Row[]>
  drop(): Promise<void>
}

/**
 * Picks a new schema name `hsmgate_test_<random>` in the test database. The store creates the
 * schema when it migrates; `drop` removes it whether or not it was created.
 */
export function testSchema(url: string = TEST_POSTGRES_URL): TestSchema {
  const schema = `hsmgate_test_${randomBytes(6).toString('hex')}`
  const query = async <Row extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<Row[]> => {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 5000,
      options: `-c search_path=${schema}`,
    })
    await client.connect()
    try {
      return (await client.query<Row>(sql, params)).rows
    } finally {
      await client.end()
    }
  }
  return {
    url,
    schema,
    options: (overrides = {}) => ({
      url,
      schema,
      poolSize: 4,
      connectTimeoutMs: 5000,
      acquireTimeoutMs: 5000,
      ...overrides,
    }),
    query,
    drop: async () => {
      await query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    },
  }
}
