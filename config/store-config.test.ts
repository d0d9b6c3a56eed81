import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { gatewayConfig } from '../cli/init/demo-files.js'
import { postgresPoolOptions } from '../store/open-store.js'
import { ConfigError, loadConfig, sqliteFile } from './load.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmgate-store-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Writes the demo configuration with `store` replaced and returns the file. */
function writeConfig(store: unknown): string {
  const config = parse(
    gatewayConfig({
      listenAddress: '127.0.0.1',
      listenPort: 8443,
      statsPort: 9901,
      members: [{ name: 'hsm-a', label: 'hsmgate-a' }],
      caKeyId: 'ab',
    }),
  ) as Record<string, unknown>
  config.store = store
  const file = join(dir, 'hsmgate.yaml')
  writeFileSync(file, stringify(config))
  return file
}

function loadError(store: unknown): string {
  try {
    loadConfig(writeConfig(store))
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as Error).message
  }
  throw new Error('expected the configuration to be rejected')
}

const url = 'postgres://hsmgate:pw-123@db.internal:5432/hsmgate'

describe('store configuration', () => {
  it('resolves a sqlite path against the file', () => {
    const config = loadConfig(writeConfig({ sqlite: 'store/hsmgate.db' }))
    expect(config.store).toEqual({ sqlite: join(dir, 'store/hsmgate.db') })
    expect(sqliteFile(config, 'doctor')).toBe(join(dir, 'store/hsmgate.db'))
  })

  it('fills postgres defaults', () => {
    const config = loadConfig(writeConfig({ postgres: { url } }))
    expect(config.store.postgres).toEqual({
      url,
      pool_size: 10,
      connect_timeout: '2s',
      acquire_timeout: '1s',
      query_timeout: '10s',
    })
    expect(() => sqliteFile(config, 'hsmgate doctor')).toThrow(/hsmgate doctor reads a SQLite/)
  })

  it('converts postgres durations to milliseconds', () => {
    const config = loadConfig(
      writeConfig({
        postgres: {
          url,
          pool_size: 3,
          connect_timeout: '1500ms',
          acquire_timeout: '2s',
          query_timeout: '1m',
          schema: 'hsmgate',
        },
      }),
    )
    const options = postgresPoolOptions(config.store.postgres!)
    expect(options).toMatchObject({
      url,
      poolSize: 3,
      connectTimeoutMs: 1500,
      acquireTimeoutMs: 2000,
      queryTimeoutMs: 60_000,
      schema: 'hsmgate',
    })
  })

  it('requires exactly one store', () => {
    const both = loadError({ sqlite: 'store/hsmgate.db', postgres: { url } })
    expect(both).toMatch(/store: set exactly one of store\.sqlite .* and store\.postgres/)
    const neither = loadError({})
    expect(neither).toMatch(/store: set exactly one of store\.sqlite/)
  })

  it('names the url field without the password', () => {
    const message = loadError({ postgres: { url: 'mysql://hsmgate:pw-123@db/hsmgate' } })
    expect(message).toContain('store.postgres.url:')
    expect(message).toContain('wrong scheme')
    expect(message).toContain('mysql://hsmgate:***@db/hsmgate')
    expect(message).not.toContain('pw-123')
    const noDatabase = loadError({ postgres: { url: 'postgres://hsmgate:pw-123@db.internal' } })
    expect(noDatabase).toContain('names no database')
    expect(noDatabase).not.toContain('pw-123')
  })

  it('rejects bad timeouts, pool sizes and schema names', () => {
    const zero = loadError({ postgres: { url, acquire_timeout: '0s' } })
    expect(zero).toContain(
      'store.postgres.acquire_timeout: acquire_timeout must be longer than zero',
    )
    const unitless = loadError({ postgres: { url, connect_timeout: '5' } })
    expect(unitless).toContain('store.postgres.connect_timeout:')
    expect(loadError({ postgres: { url, pool_size: 0 } })).toContain('store.postgres.pool_size:')
    const schema = loadError({ postgres: { url, schema: 'Hsm-Gate' } })
    expect(schema).toContain('store.postgres.schema: lowercase letters, digits and underscores')
    const unknown = loadError({ postgres: { url, password: 'pw-123' } })
    expect(unknown).toContain('store.postgres')
    expect(unknown).not.toContain('pw-123')
  })
})
