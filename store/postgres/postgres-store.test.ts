import { createServer, type Server, type Socket } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import {
  startPostgresInstance,
  type PostgresInstance,
} from '../../test/helpers/postgres-instance.js'
import { testSchema, type TestSchema } from '../../test/helpers/postgres-schema.js'
import { storeSuite } from '../../test/helpers/store-suite.js'
import { postgresMigrations } from '../migrations/postgres.js'
import type { AuditEntry } from '../store.js'
import { StoreUnavailableError } from '../store-unavailable.js'
import { migrate, MigrationError } from './migrate.js'
import { PostgresPool } from './postgres-pool.js'
import { PostgresStore } from './postgres-store.js'

const entry = (operation: string): AuditEntry => ({
  time: new Date().toISOString(),
  node: 'node-1',
  principal: 'spiffe://hsmgate.demo/app/payments',
  certSerial: null,
  sourceAddress: null,
  decisionId: `d_${operation}`,
  operation,
  key: null,
  keyVersion: null,
  outcome: 'ok',
  status: 200,
  errorCode: null,
  policyIds: [],
  reason: null,
  requestDigest: 'ab'.repeat(32),
  latencyMs: 2,
})

storeSuite('postgres store', async () => {
  const schema = testSchema()
  return {
    open: () => PostgresStore.open(schema.options()),
    migrationVersions: async () => {
      const rows = await schema.query<{ version: number }>(
        'SELECT version FROM schema_migrations ORDER BY version',
      )
      return rows.map((row) => row.version)
    },
    migrationCount: postgresMigrations.length,
    cleanup: () => schema.drop(),
  }
})

/** Returns the rejection of `promise` and how long it took, failing when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now()
  try {
    await promise
  } catch (error) {
    return { error, ms: performance.now() - started }
  }
  throw new Error('expected the call to fail')
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
}

describe('postgres store availability', () => {
  let schema: TestSchema | undefined
  const stores: PostgresStore[] = []

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close()
    await schema?.drop()
    schema = undefined
  })

  it('fails with pool_exhausted within the acquire timeout', async () => {
    schema = testSchema()
    const store = await PostgresStore.open(schema.options({ poolSize: 1, acquireTimeoutMs: 400 }))
    stores.push(store)
    await store.appendAudit(entry('first'))

    // A second session holds the writer's head row, so the append below keeps the only
    // pooled connection busy while it waits for the lock.
    const holder = new pg.Client({ connectionString: schema.url })
    await holder.connect()
    try {
      await holder.query(`SET search_path = ${schema.schema}`)
      await holder.query('BEGIN')
      await holder.query("SELECT * FROM audit_heads WHERE writer = 'node-1' FOR UPDATE")
      const blocked = store.appendAudit(entry('blocked'))

      const { error, ms } = await rejection(store.keyVersions('payments-data'))
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as StoreUnavailableError).reason).toBe('pool_exhausted')
      expect((error as Error).message).toMatch(/store\.postgres\.pool_size/)
      expect(ms).toBeGreaterThanOrEqual(350)
      expect(ms).toBeLessThan(1500)

      await holder.query('ROLLBACK')
      expect((await blocked).seq).toBe(2)
    } finally {
      await holder.end()
    }
  })

  it('fails with query_timeout when a lock wait is too long', async () => {
    schema = testSchema()
    const store = await PostgresStore.open(schema.options({ queryTimeoutMs: 300 }))
    stores.push(store)
    await store.appendAudit(entry('first'))

    const holder = new pg.Client({ connectionString: schema.url })
    await holder.connect()
    try {
      await holder.query(`SET search_path = ${schema.schema}`)
      await holder.query('BEGIN')
      await holder.query("SELECT * FROM audit_heads WHERE writer = 'node-1' FOR UPDATE")

      const { error, ms } = await rejection(store.appendAudit(entry('waits')))
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as StoreUnavailableError).reason).toBe('query_timeout')
      expect(ms).toBeLessThan(1500)
    } finally {
      await holder.query('ROLLBACK')
      await holder.end()
    }

    // The cancelled append wrote nothing, so the chain continues at seq 2.
    expect((await store.appendAudit(entry('second'))).seq).toBe(2)
  })

  it('fails with unreachable when nothing listens, without the password', async () => {
    const server = createServer()
    const port = await listen(server)
    await new Promise((resolve) => server.close(resolve))
    const url = `postgres://hsmgate:s3cret-pw@127.0.0.1:${port}/test`
    const { error, ms } = await rejection(
      PostgresStore.open({ url, poolSize: 2, connectTimeoutMs: 2000, acquireTimeoutMs: 2000 }),
    )
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect((error as StoreUnavailableError).reason).toBe('unreachable')
    expect((error as Error).message).toContain(`postgres://hsmgate:***@127.0.0.1:${port}/test`)
    expect((error as Error).message).not.toContain('s3cret-pw')
    expect(ms).toBeLessThan(2000)
  })

  describe('against a server that accepts and never answers', () => {
    let server: Server
    let port: number
    const sockets: Socket[] = []

    beforeAll(async () => {
      server = createServer((socket) => sockets.push(socket))
      port = await listen(server)
    })

    afterAll(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    })

    it('gives up after the acquire timeout', async () => {
      const url = `postgres://postgres@127.0.0.1:${port}/test`
      const options = { url, poolSize: 2, connectTimeoutMs: 10_000, acquireTimeoutMs: 300 }
      const { error, ms } = await rejection(PostgresStore.open(options))
      expect((error as StoreUnavailableError).reason).toBe('unreachable')
      expect(ms).toBeGreaterThanOrEqual(250)
      expect(ms).toBeLessThan(1500)
    })

    it('gives up after the connect timeout', async () => {
      const url = `postgres://postgres@127.0.0.1:${port}/test`
      const options = { url, poolSize: 2, connectTimeoutMs: 300, acquireTimeoutMs: 10_000 }
      const { error, ms } = await rejection(PostgresStore.open(options))
      expect((error as StoreUnavailableError).reason).toBe('unreachable')
      expect(ms).toBeLessThan(1500)
    })
  })

  it('rejects calls after close', async () => {
    schema = testSchema()
    const store = await PostgresStore.open(schema.options())
    await store.close()
    const { error } = await rejection(store.listKeys())
    expect((error as StoreUnavailableError).reason).toBe('closed')
  })

  it('rejects a schema name that would need quoting', () => {
    expect(
      () =>
        new PostgresPool({
          url: 'postgres://postgres@127.0.0.1:5432/test',
          schema: 'x; DROP TABLE keys',
          poolSize: 1,
          connectTimeoutMs: 1000,
          acquireTimeoutMs: 1000,
        }),
    ).toThrow(/schema 'x; DROP TABLE keys' is invalid/)
  })

  it('compares times by instant, not by text', async () => {
    schema = testSchema()
    const store = await PostgresStore.open(schema.options())
    stores.push(store)
    // 03:00 at +02:00 is 01:00 UTC; as text it sorts after 01:30Z.
    await store.putCertificate({
      serial: '0a',
      app: 'payments',
      host: 'pay-1',
      addresses: [],
      notBefore: '2026-12-04T02:00:00.000+02:00',
      notAfter: '2026-12-04T03:00:00.000+02:00',
      keyProtection: 'software',
      status: 'active',
      revokedAt: null,
      revocationReason: null,
      issuedAt: '2026-12-04T00:00:00.000Z',
    })
    await store.revokeCertificate('0a', 'superseded', '2026-12-04T00:10:00.000Z')
    const before = await store.revokedCertificates('2026-12-04T00:30:00.000Z')
    expect(before.map((c) => c.notAfter)).toEqual(['2026-12-04T01:00:00.000Z'])
    expect(await store.revokedCertificates('2026-12-04T01:30:00.000Z')).toEqual([])
  })
})

describe('postgres migrations', () => {
  let schema: TestSchema

  afterEach(async () => {
    await schema.drop()
  })

  const versions = async (): Promise<number[]> =>
    (await schema.query<{ version: number }>('SELECT version FROM schema_migrations')).map(
      (row) => row.version,
    )

  it('rolls back a failed migration and keeps the ones before', async () => {
    schema = testSchema()
    const pool = new PostgresPool(schema.options())
    try {
      const good = 'CREATE TABLE first_table (id integer)'
      const bad = 'CREATE TABLE half_done (id integer); SELECT * FROM missing_table'
      await expect(migrate(pool, [good, bad])).rejects.toThrow(MigrationError)
      expect(await versions()).toEqual([1])
      const tables = await schema.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'half_done'",
        [schema.schema],
      )
      expect(tables).toEqual([])
      await migrate(pool, [good, 'CREATE TABLE half_done (id integer)'])
      expect(await versions()).toEqual([1, 2])
    } finally {
      await pool.close()
    }
  })

  it('refuses a schema newer than this program', async () => {
    schema = testSchema()
    const store = await PostgresStore.open(schema.options())
    await store.close()
    await schema.query('INSERT INTO schema_migrations (version) VALUES (99)')
    await expect(PostgresStore.open(schema.options())).rejects.toThrow(
      new RegExp(`schema is at version 99, newer than the ${postgresMigrations.length} migrations`),
    )
  })

  it('lets two nodes migrate one at a time', async () => {
    schema = testSchema()
    const pools = [new PostgresPool(schema.options()), new PostgresPool(schema.options())]
    // Without the advisory lock, both would apply version 1 and one would fail on the
    // duplicate table or the duplicate schema_migrations row.
    const slow = [
      'CREATE TABLE slow (id integer); SELECT pg_sleep(0.3)',
      'CREATE TABLE later (id integer)',
    ]
    try {
      await Promise.all(pools.map((pool) => migrate(pool, slow)))
      expect(await versions()).toEqual([1, 2])
    } finally {
      for (const pool of pools) await pool.close()
    }
  })
})

describe('postgres store across a server restart', () => {
  let instance: PostgresInstance
  let store: PostgresStore

  beforeAll(async () => {
    instance = await startPostgresInstance()
    store = await PostgresStore.open({
      url: instance.url(),
      poolSize: 2,
      connectTimeoutMs: 1000,
      acquireTimeoutMs: 1000,
    })
  })

  afterAll(async () => {
    await store?.close()
    await instance?.cleanup()
  })

  it('fails fast while the server is down and recovers after', async () => {
    await store.appendAudit(entry('before'))
    await instance.stop('immediate')

    const { error, ms } = await rejection(store.appendAudit(entry('while-down')))
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect(['connection_lost', 'unreachable']).toContain((error as StoreUnavailableError).reason)
    expect(ms).toBeLessThan(1500)

    await instance.start()
    // The pool drops the broken connections; the next call opens a new one.
    const after = await retryOnce(() => store.appendAudit(entry('after')))
    expect(after.seq).toBe(2)
    const records = await store.auditRecords('node-1')
    expect(records.map((r) => r.operation)).toEqual(['before', 'after'])
  })
})

/** Retries once after a StoreUnavailableError, as a client that received a 503 would. */
async function retryOnce<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error
    return call()
  }
}
