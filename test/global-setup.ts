import pg from 'pg'
import { startPostgresInstance, type PostgresInstance } from './helpers/postgres-instance.js'

/** The server the PostgreSQL tests use when nothing else is named: trust auth, database test. */
const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/test'

async function accepts(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

let privateServer: PostgresInstance | undefined

/**
 * Gives the PostgreSQL tests a database. HSMGATE_TEST_POSTGRES_URL, when set, is used as it is.
 * Otherwise the server on 127.0.0.1:5432 (trust auth, database test) is used when it answers,
 * and a private server is started for the run when it does not, so that the suite also runs on
 * a machine whose PostgreSQL is not set up that way. The test files read the URL from the
 * environment, which their worker processes inherit from this one.
 */
export async function setup(): Promise<void> {
  if (process.env.HSMGATE_TEST_POSTGRES_URL !== undefined) return
  const probe = process.env.HSMGATE_TEST_POSTGRES_PROBE_URL ?? DEFAULT_URL
  if (await accepts(probe)) {
    process.env.HSMGATE_TEST_POSTGRES_URL = probe
    return
  }
  privateServer = await startPostgresInstance()
  const admin = new pg.Client({ connectionString: privateServer.url() })
  await admin.connect()
  try {
    await admin.query('CREATE DATABASE test')
  } finally {
    await admin.end()
  }
  process.env.HSMGATE_TEST_POSTGRES_URL = privateServer.url('test')
  process.stderr.write(
    `PostgreSQL at ${probe} did not answer; the tests use a private server on port ` +
      `${privateServer.port}\n`,
  )
}

export async function teardown(): Promise<void> {
  await privateServer?.cleanup()
}
