import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../store/sqlite-store.js'
import { CLI, execFileAsync, initGateway } from '../helpers/gateway-process.js'

// Each case breaks a fresh setup in one way that `hsmgate doctor` claims to detect, checks
// that doctor names the problem and exits 1, and repairs the setup again.

interface Result {
  name: string
  status: 'ok' | 'warn' | 'fail'
  detail: string
  fix?: string
}

let dir: string
let port: number
let config: string

beforeAll(async () => {
  ;({ dir, port } = await initGateway())
  config = join(dir, 'hsmgate.yaml')
}, 120_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function doctor(
  file = config,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; results: Result[] }> {
  const args = [CLI, 'doctor', '--config', file, '--json']
  const options = { env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn', ...env } }
  try {
    const { stdout } = await execFileAsync(process.execPath, args, options)
    return { code: 0, results: JSON.parse(stdout) as Result[] }
  } catch (error) {
    const e = error as { code: number; stdout: string }
    return { code: e.code, results: JSON.parse(e.stdout) as Result[] }
  }
}

/** Runs doctor and returns the failed checks. */
async function failures(file = config, env: NodeJS.ProcessEnv = {}): Promise<Result[]> {
  const { code, results } = await doctor(file, env)
  const failed = results.filter((r) => r.status === 'fail')
  expect(code).toBe(failed.length > 0 ? 1 : 0)
  for (const result of failed) expect(result.fix, result.name).toBeTruthy()
  return failed
}

/** Writes a variant of hsmgate.yaml next to it, so relative paths still resolve. */
function variant(name: string, edit: (text: string) => string): string {
  const file = join(dir, name)
  writeFileSync(file, edit(readFileSync(config, 'utf8')))
  return file
}

/** Puts the saved copy of the store back, dropping any write-ahead log of the broken one. */
function restoreStore(store: string): void {
  rmSync(`${store}-wal`, { force: true })
  rmSync(`${store}-shm`, { force: true })
  renameSync(`${store}.saved`, store)
}

describe('doctor', () => {
  it('passes a fresh setup', async () => {
    const { code, results } = await doctor()
    expect(results.filter((r) => r.status === 'fail')).toEqual([])
    expect(code).toBe(0)
    const names = results.map((r) => r.name)
    for (const name of ['envoy', 'hsm member hsm-a', 'pin file hsm-a', 'clock', 'store']) {
      expect(names).toContain(name)
    }
    expect(names).toContain('port listen.port')
    expect(names).toContain('policies')
  }, 60_000)

  it('finds a missing Envoy', async () => {
    const failed = await failures(config, { ENVOY_BIN: join(dir, 'no-envoy') })
    expect(failed.map((r) => r.name)).toEqual(['envoy'])
  }, 60_000)

  it('finds a module that does not load', async () => {
    const file = variant('bad-module.yaml', (t) =>
      t.replace('module: /usr/lib/softhsm/libsofthsm2.so', `module: ${join(dir, 'none.so')}`),
    )
    const failed = await failures(file)
    expect(failed.map((r) => r.name)).toEqual(['hsm member hsm-a'])
    expect(failed[0]?.detail).toBe(
      `PKCS#11 module ${join(dir, 'none.so')} cannot be opened (ENOENT)`,
    )
    expect(failed[0]?.fix).toMatch(
      /^install the PKCS#11 library .* or set the module of hsm member 'hsm-a'/,
    )
  }, 60_000)

  it('names the build problem of a file that is not a module', async () => {
    const file = variant('not-module.yaml', (t) =>
      t.replace('module: /usr/lib/softhsm/libsofthsm2.so', `module: ${config}`),
    )
    const failed = await failures(file)
    expect(failed[0]?.detail).toContain('failed to load')
    expect(failed[0]?.detail).not.toContain('; check')
    expect(failed[0]?.fix).toContain('a PKCS#11 library built for this platform')
  }, 60_000)

  it('finds a missing token', async () => {
    const file = variant('bad-token.yaml', (t) =>
      t.replace('token_label: hsmgate-b', 'token_label: absent'),
    )
    const failed = await failures(file)
    expect(failed.map((r) => r.name)).toEqual(['hsm member hsm-b'])
  }, 60_000)

  it('finds a readable PIN file', async () => {
    const pin = join(dir, 'secrets', 'hsm-a.pin')
    chmodSync(pin, 0o644)
    try {
      const failed = await failures()
      expect(failed.map((r) => r.name)).toEqual(['pin file hsm-a'])
      expect(failed[0]?.detail).toContain('0644')
    } finally {
      chmodSync(pin, 0o600)
    }
  }, 60_000)

  it('finds a missing PIN file', async () => {
    const pin = join(dir, 'secrets', 'hsm-b.pin')
    renameSync(pin, `${pin}.away`)
    try {
      expect((await failures()).map((r) => r.name)).toEqual(['pin file hsm-b'])
    } finally {
      renameSync(`${pin}.away`, pin)
    }
  }, 60_000)

  it('finds a clock behind the audit', async () => {
    const store = join(dir, 'store', 'hsmgate.db')
    copyFileSync(store, `${store}.saved`)
    const future = new Date(Date.now() + 3_600_000).toISOString()
    const writer = new SqliteStore(store)
    await writer.appendAuditBatch([
      {
        time: future,
        node: 'doctor-test',
        principal: '',
        certSerial: null,
        sourceAddress: null,
        decisionId: 'd_doctor',
        operation: 'health',
        key: null,
        keyVersion: null,
        outcome: 'ok',
        status: 200,
        errorCode: null,
        policyIds: [],
        reason: null,
        requestDigest: '0'.repeat(64),
        latencyMs: 1,
      },
    ])
    await writer.close()
    try {
      expect((await failures()).map((r) => r.name)).toEqual(['clock'])
    } finally {
      restoreStore(store)
    }
  }, 60_000)

  it('finds a missing or unmigrated store', async () => {
    const store = join(dir, 'store', 'hsmgate.db')
    copyFileSync(store, `${store}.saved`)
    try {
      const db = new Database(store)
      db.prepare(
        'DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)',
      ).run()
      db.close()
      const unmigrated = await failures()
      expect(unmigrated.map((r) => r.name)).toEqual(['store'])
      expect(unmigrated[0]?.detail).toMatch(/has \d+ of \d+ migrations/)

      rmSync(store)
      expect((await failures()).map((r) => r.name)).toContain('store')
    } finally {
      restoreStore(store)
    }
  }, 60_000)

  it('finds an unreadable CA certificate', async () => {
    const ca = join(dir, 'pki', 'ca.crt')
    copyFileSync(ca, `${ca}.saved`)
    writeFileSync(ca, 'not a certificate\n')
    try {
      expect((await failures()).map((r) => r.name)).toEqual(['ca certificate'])
    } finally {
      renameSync(`${ca}.saved`, ca)
    }
  }, 60_000)

  it('finds a port held by another program', async () => {
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    try {
      const failed = await failures()
      expect(failed.map((r) => r.name)).toEqual(['port listen.port'])
      expect(failed[0]?.detail).toContain('another program')
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }, 60_000)

  it('finds an admin socket open to other users', async () => {
    const socket = join(dir, 'run', 'envoy-admin.sock')
    mkdirSync(join(dir, 'run'), { recursive: true, mode: 0o700 })
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen(socket, resolve))
    try {
      chmodSync(socket, 0o666)
      const failed = await failures()
      expect(failed.map((r) => r.name)).toEqual(['envoy admin socket'])
      expect(failed[0]?.detail).toContain('mode 0666')

      chmodSync(socket, 0o600)
      expect(await failures()).toEqual([])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }, 60_000)

  it('warns about the renamed envoy.admin_port', async () => {
    const file = variant('renamed.yaml', (text) => text.replace('stats_port:', 'admin_port:'))
    const { code, results } = await doctor(file)
    expect(code).toBe(0)
    const renamed = results.find((r) => r.name === 'config envoy.admin_port')
    expect(renamed?.status).toBe('warn')
    expect(renamed?.fix).toBe('rename envoy.admin_port to envoy.stats_port')
  }, 60_000)

  it('names the missing policy directory in its fix', async () => {
    const file = variant('no-policies.yaml', (t) =>
      t.replace('policies: policies', 'policies: gone'),
    )
    const failed = await failures(file)
    expect(failed.map((r) => r.name)).toEqual(['policies'])
    expect(failed[0]?.fix).toContain(`create ${join(dir, 'gone')}`)
    expect(failed[0]?.fix).toContain('authz.policies')
  }, 60_000)

  it('finds an invalid policy directory', async () => {
    const bad = join(dir, 'policies', 'broken.cedar')
    writeFileSync(bad, 'permit (principal, action, resource) when { nonsense };\n')
    try {
      expect((await failures()).map((r) => r.name)).toEqual(['policies'])
    } finally {
      rmSync(bad)
    }
  }, 60_000)

  it('names the policy directory in the check command of its fix', async () => {
    const bad = join(dir, 'policies', 'broken.cedar')
    writeFileSync(bad, 'permit (principal, action, resource) when { nonsense };\n')
    try {
      const [failed] = await failures()
      expect(failed?.fix).toContain(`hsmgate policy check --policies ${join(dir, 'policies')}`)
    } finally {
      rmSync(bad)
    }
  }, 60_000)
})
