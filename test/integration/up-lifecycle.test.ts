import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import {
  CLI,
  initGateway,
  isRunning,
  postJson,
  ROOT,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { TEST_POSTGRES_URL } from '../helpers/postgres-schema.js'

const run = promisify(execFile)
const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so'
const dirs: string[] = []

/** Lists pids of processes whose command line mentions `dir`, excluding this test process. */
async function processesUsing(dir: string): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-f', dir]).catch(() => ({ stdout: '' }))
  return stdout
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== process.pid)
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return false
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

describe('hsmgate init', () => {
  it('writes PIN files readable by their owner only', async () => {
    const { dir } = await initGateway()
    dirs.push(dir)
    for (const file of ['hsm-a.pin', 'hsm-b.pin', 'decision.key']) {
      expect(statSync(join(dir, 'secrets', file)).mode & 0o777).toBe(0o600)
    }
    expect(statSync(join(dir, 'pki', 'probe.key')).mode & 0o777).toBe(0o600)
  })

  it('puts every key on both tokens under one CKA_ID', async () => {
    const dir = dirs[0]!
    const idsOn = async (member: string, label: string): Promise<string[]> => {
      const pin = readFileSync(join(dir, 'secrets', `${member}.pin`), 'utf8').trim()
      const { stdout } = await run(
        'pkcs11-tool',
        [
          '--module',
          SOFTHSM_MODULE,
          '--token-label',
          label,
          '--login',
          '--pin',
          pin,
          '--list-objects',
        ],
        { env: { ...process.env, SOFTHSM2_CONF: join(dir, 'hsm', 'softhsm2.conf') } },
      )
      // Each object block lists its type on the first line and its ID further down.
      return stdout
        .split(/\n(?=\S)/)
        .filter((block) => /^(Private Key|Secret Key) Object/.test(block))
        .map((block) => /ID:\s+([0-9a-f]+)/.exec(block)?.[1] ?? 'none')
        .sort()
    }
    const onA = await idsOn('hsm-a', 'hsmgate-a')
    const onB = await idsOn('hsm-b', 'hsmgate-b')
    // The cluster key-encryption key, the CA key and two keys for each of the two applications.
    expect(onA).toHaveLength(6)
    expect(onB).toEqual(onA)
    const caKeyId = /ca_key_id: ([0-9a-f]+)/.exec(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8'))
    expect(onA).toContain(caKeyId?.[1])
  })

  it('issues certificates that openssl verifies', async () => {
    const dir = dirs[0]!
    const ca = join(dir, 'pki', 'ca.crt')
    // The serving certificate is issued at start and checked in pki-profiles.test.ts.
    const leaves = ['pki/probe.crt', 'apps/payments/client.crt', 'apps/reporting/client.crt'].map(
      (p) => join(dir, p),
    )
    const { stdout } = await run('openssl', ['verify', '-CAfile', ca, ...leaves])
    expect(
      stdout
        .trim()
        .split('\n')
        .every((l) => l.endsWith(': OK')),
    ).toBe(true)
    const text = await run('openssl', [
      'x509',
      '-in',
      leaves[1]!,
      '-noout',
      '-ext',
      'subjectAltName,extendedKeyUsage',
    ])
    expect(text.stdout).toContain('URI:spiffe://hsmgate.demo/app/payments')
    expect(text.stdout).toContain('TLS Web Client Authentication')
  })

  it('refuses to overwrite a setup without --force', async () => {
    const dir = dirs[0]!
    const second = run(process.execPath, [CLI, 'init', '--dir', dir])
    await expect(second).rejects.toMatchObject({ code: 78 })
    await second.catch((error: { stderr: string }) => {
      expect(error.stderr).toContain('--force')
    })
    expect(existsSync(join(dir, 'hsmgate.yaml'))).toBe(true)
  })
})

describe('authz start', () => {
  it('exits 78 when the store cannot be opened', async () => {
    const dir = dirs[0]!
    const config = parse(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8')) as Record<string, unknown>
    const database = new URL(TEST_POSTGRES_URL)
    database.username = `hsmgate_missing_${process.pid}`
    config.store = { postgres: { url: database.toString(), connect_timeout: '3s' } }
    const file = join(dir, 'hsmgate-missing-role.yaml')
    writeFileSync(file, stringify(config))

    const authz = await run(
      process.execPath,
      [join(ROOT, 'dist', 'authz', 'main.js'), '--config', file],
      {
        env: { ...process.env, HSMGATE_LOG_LEVEL: 'info' },
        timeout: 30_000,
      },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    )
    expect(authz.code).toBe(78)
    expect(authz.stderr).toContain(database.username)
    expect(authz.stderr).toContain('does not exist')
    expect(authz.stderr).toContain('create the role and its database')
  })
})

describe('hsmgate up', () => {
  let gateway: TestGateway

  it('restarts a crashed authz process', async () => {
    const { dir, port } = await initGateway()
    dirs.push(dir)
    gateway = await startUp(dir, port)
    const { stdout } = await run('pgrep', ['-f', `authz/main.js --config ${dir}`])
    const pid = Number(stdout.trim().split('\n')[0])
    process.kill(pid, 'SIGKILL')
    const recovered = await waitFor(async () => {
      const res = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
      return res.status === 200
    }, 20_000)
    expect(recovered).toBe(true)
    const after = await run('pgrep', ['-f', `authz/main.js --config ${dir}`])
    expect(Number(after.stdout.trim())).not.toBe(pid)
  })

  it('prints a sign command that works as printed', async () => {
    const printed = /^try:\n {2}(curl .*)$/m.exec(gateway.stdout())
    expect(printed, gateway.stdout()).not.toBeNull()
    expect(printed![1]).toContain(join(gateway.dir, 'apps', 'payments', 'client.crt'))
    const { stdout } = await run('sh', ['-c', printed![1]!])
    expect(JSON.parse(stdout)).toMatchObject({ signature: expect.any(String), version: 1 })
  })

  it('rejects a second gateway on a busy port', async () => {
    const { dir } = await initGateway()
    dirs.push(dir)
    const config = join(dir, 'hsmgate.yaml')
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(/port: \d+\n/, `port: ${gateway.port}\n`),
    )
    const second = await run(process.execPath, [CLI, 'up', '--dir', dir]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    )
    expect(second.code).toBe(78)
    expect(second.stderr).toContain(`127.0.0.1:${gateway.port} cannot be bound`)
    const res = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
    expect(res.status).toBe(200)
  })

  it('answers 503 while authz is down, never allowing', async () => {
    const { stdout } = await run('pgrep', ['-f', `authz/main.js --config ${gateway.dir}`])
    process.kill(Number(stdout.trim()), 'SIGSTOP')
    try {
      const res = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
      expect(res.status).toBe(503)
    } finally {
      process.kill(Number(stdout.trim()), 'SIGCONT')
    }
  })

  it('stops at once on SIGINT during startup', async () => {
    const { dir } = await initGateway()
    dirs.push(dir)
    const up = spawn(process.execPath, [CLI, 'up', '--dir', dir], { stdio: 'ignore' })
    const exited = new Promise<number | null>((resolve) => up.once('exit', resolve))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const sent = Date.now()
    up.kill('SIGINT')
    await exited
    expect(Date.now() - sent).toBeLessThan(12_000)
    const left = await waitFor(async () => (await processesUsing(dir)).length === 0, 5_000)
    expect(left).toBe(true)
  })

  it('leaves no process behind after SIGTERM', async () => {
    const before = await processesUsing(gateway.dir)
    expect(before.length).toBeGreaterThanOrEqual(3)
    const code = await gateway.stop()
    expect(code).toBe(0)
    const gone = await waitFor(async () => before.every((pid) => !isRunning(pid)), 5_000)
    expect(gone).toBe(true)
    expect(await processesUsing(gateway.dir)).toEqual([])
  })
})
