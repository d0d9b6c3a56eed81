import { existsSync, readFileSync } from 'node:fs'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPostgresInstance, type PostgresInstance } from './postgres-instance.js'

let instance: PostgresInstance

async function query(sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: instance.url(), connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  instance = await startPostgresInstance()
})

afterAll(async () => {
  await instance?.cleanup()
})

describe('postgres instance helper', () => {
  it('serves on its loopback port only', async () => {
    expect(instance.running).toBe(true)
    const listen = await query('SHOW listen_addresses')
    expect(listen.rows[0]).toEqual({ listen_addresses: '127.0.0.1' })
    const user = await query('SELECT current_user AS name')
    expect(user.rows[0]).toEqual({ name: 'postgres' })
  })

  it('runs the server as the postgres OS user', async () => {
    const result = await query("SELECT pg_read_file('postmaster.pid') AS pid_file")
    const pid = String(result.rows[0]?.pid_file).split('\n')[0]
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1]
    expect(uid).not.toBe('0')
  })

  it('keeps data across fast stop and start', async () => {
    await query('CREATE TABLE kept (value text)')
    await query("INSERT INTO kept VALUES ('before restart')")
    await instance.stop('fast')
    expect(instance.running).toBe(false)
    await expect(query('SELECT 1')).rejects.toThrow(/ECONNREFUSED/)
    await instance.start()
    const rows = await query('SELECT value FROM kept')
    expect(rows.rows).toEqual([{ value: 'before restart' }])
  })

  it('recovers committed data after an immediate stop', async () => {
    await query("INSERT INTO kept VALUES ('before crash')")
    await instance.stop('immediate')
    expect(instance.running).toBe(false)
    await instance.start()
    const rows = await query('SELECT value FROM kept ORDER BY value')
    expect(rows.rows.map((row) => row.value)).toEqual(['before crash', 'before restart'])
  })

  it('removes its data directory on cleanup', async () => {
    await instance.cleanup()
    expect(instance.running).toBe(false)
    expect(existsSync(instance.dataDir)).toBe(false)
    // A second cleanup, as afterAll makes it, is harmless.
    await instance.cleanup()
  })
})
