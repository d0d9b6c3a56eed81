import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { TEST_POSTGRES_URL } from '../../test/helpers/postgres-schema.js'
import { StoreUnavailableError } from '../store-unavailable.js'
import { PostgresStore } from './postgres-store.js'

// Opens the store against the test server with a role or a database that does not exist, and
// against a closed port, and checks that each error names the fix and masks the password.

const server = new URL(TEST_POSTGRES_URL)
const missing = `hsmgate_missing_${randomBytes(4).toString('hex')}`
const password = 's3cret-pw'

/** Returns the error with which opening a store at `url` fails. */
async function openError(url: string): Promise<StoreUnavailableError> {
  const options = { url, poolSize: 1, connectTimeoutMs: 3000, acquireTimeoutMs: 3000 }
  const error: unknown = await PostgresStore.open(options).then(
    async (store) => {
      await store.close()
      throw new Error(`opening ${url} succeeded`)
    },
    (rejected: unknown) => rejected,
  )
  expect(error).toBeInstanceOf(StoreUnavailableError)
  return error as StoreUnavailableError
}

/** Returns the test server's URL with another user, password and database. */
function urlWith(user: string, database: string): string {
  const url = new URL(TEST_POSTGRES_URL)
  url.username = user
  url.password = password
  url.pathname = `/${database}`
  return url.toString()
}

describe('postgres connection errors', () => {
  it('names the fix for a role that does not exist', async () => {
    const error = await openError(urlWith(missing, server.pathname.slice(1)))
    expect(error.reason).toBe('unreachable')
    expect(error.message).toContain('28000')
    expect(error.message).toContain(`role "${missing}" does not exist`)
    expect(error.message).toContain('create the role and its database')
    expect(error.message).toContain('correct the user in store.postgres.url')
    expect(error.message).toContain(`${missing}:***@`)
    expect(error.message).not.toContain(password)
  })

  it('names the fix for a database that does not exist', async () => {
    const error = await openError(urlWith(server.username, missing))
    expect(error.reason).toBe('unreachable')
    expect(error.message).toContain('3D000')
    expect(error.message).toContain(`database "${missing}" does not exist`)
    expect(error.message).toContain(
      'create the database, or correct the database name in store.postgres.url',
    )
    expect(error.message).not.toContain(password)
  })

  it('names the fix for a refused connection', async () => {
    const closed = createServer()
    const port = await new Promise<number>((resolve) => {
      closed.listen(0, '127.0.0.1', () => resolve((closed.address() as { port: number }).port))
    })
    await new Promise((resolve) => closed.close(resolve))

    const error = await openError(`postgres://hsmgate:${password}@127.0.0.1:${port}/hsmgate`)
    expect(error.reason).toBe('unreachable')
    expect(error.message).toContain('ECONNREFUSED')
    expect(error.message).toContain(
      'start PostgreSQL, or correct the host and port in store.postgres.url',
    )
    expect(error.message).not.toContain(password)
  })
})
