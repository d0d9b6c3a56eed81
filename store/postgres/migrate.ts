import type pg from 'pg'
import { postgresMigrations } from '../migrations/postgres.js'
import type { PostgresPool } from './postgres-pool.js'

/** First key of the session advisory lock that serializes migrations; the second is the schema. */
const MIGRATION_LOCK_CLASS = 0x68736d67 // 'hsmg'

/** A migration that failed, or a schema that is newer than this program. */
export class MigrationError extends Error {
  readonly code = 'store_migration_failed'

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MigrationError'
  }
}

/**
 * Brings the schema up to the newest version. A session advisory lock keyed by the schema name
 * makes nodes that start at the same time migrate one after the other: the first applies the
 * pending migrations, the others then find none left. Each migration runs in its own
 * transaction together with its schema_migrations row, so a failed one leaves no trace and the
 * versions before it stay applied.
 */
export async function migrate(
  pool: PostgresPool,
  migrations: readonly string[] = postgresMigrations,
): Promise<void> {
  await pool.withClient(async (client) => {
    const lockKey = [MIGRATION_LOCK_CLASS, pool.schema ?? null]
    const keyExpression = "$1, hashtext(COALESCE($2::text, current_schema(), ''))"
    await client.query(`SELECT pg_advisory_lock(${keyExpression})`, lockKey)
    try {
      await applyPending(client, pool.schema, migrations)
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${keyExpression})`, lockKey)
    }
  })
}

async function applyPending(
  client: pg.PoolClient,
  schema: string | undefined,
  migrations: readonly string[],
): Promise<void> {
  if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  await client.query(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version INTEGER PRIMARY KEY,
       applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
     )`,
  )
  const result = await client.query<{ v: number | null }>(
    'SELECT MAX(version) AS v FROM schema_migrations',
  )
  const current = result.rows[0]?.v ?? 0
  if (current > migrations.length) {
    throw new MigrationError(
      `the store schema is at version ${current}, newer than the ${migrations.length} ` +
        'migrations this hsmgate knows; upgrade hsmgate on this node',
    )
  }
  for (let version = current + 1; version <= migrations.length; version++) {
    await applyOne(client, version, migrations[version - 1]!)
  }
}

async function applyOne(client: pg.PoolClient, version: number, sql: string): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query(sql)
    await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version])
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw new MigrationError(
      `store migration ${version} failed and was rolled back: ${(error as Error).message}`,
      { cause: error },
    )
  }
}
