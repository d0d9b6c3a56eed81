import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startPostgresInstance,
  type PostgresInstance,
} from '../../test/helpers/postgres-instance.js'
import { StoreUnavailableError } from '../store-unavailable.js'
import { PostgresPool } from './postgres-pool.js'

let instance: PostgresInstance

beforeAll(async () => {
  instance = await startPostgresInstance()
}, 60_000)

afterAll(async () => {
  await instance?.cleanup()
})

describe('postgres pool', () => {
  it('survives a server shutdown while a call holds a connection', async () => {
    const pool = new PostgresPool({
      url: instance.url(),
      poolSize: 1,
      connectTimeoutMs: 500,
      acquireTimeoutMs: 1000,
    })
    try {
      // The server ends the connection between the two statements of one call, which makes
      // the checked-out client emit 'error'; an unhandled one would fail this test run.
      const call = pool.withClient(async (client) => {
        await client.query('SELECT 1')
        await instance.stop('fast')
        await new Promise((resolve) => setTimeout(resolve, 200))
        return client.query('SELECT 2')
      })
      await expect(call).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(pool.query('SELECT 3')).rejects.toBeInstanceOf(StoreUnavailableError)

      await instance.start()
      const rows = await pool.query<{ n: number }>('SELECT 4 AS n')
      expect(rows).toEqual([{ n: 4 }])
    } finally {
      await pool.close()
    }
  })
})
