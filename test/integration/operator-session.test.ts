import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDocument } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, appTls, curl, execFileAsync, freePorts } from '../helpers/gateway-process.js'

// One full gateway session at log level trace: init, up, operations, enrollment with a token,
// a renewal and errors. Afterwards every log it produced is scanned for secrets, and the
// metrics endpoints, `hsmgate status` and its failure after stop are checked. A quota on random
// bytes and an anomaly rule that alerts on each first use of a key feed the control metrics.

let dir: string
let up: ChildProcess | undefined
let upStderr = ''
const cliStderr: string[] = []
let ports: { listen: number; stats: number; enroll: number; authz: number; backend: number }
const plaintexts: string[] = []
let enrollmentToken = ''

const env = { ...process.env, HSMGATE_LOG_LEVEL: 'trace' }

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], { env })
    cliStderr.push(stderr)
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    cliStderr.push(e.stderr)
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

const url = (path: string) => `https://127.0.0.1:${ports.listen}${path}`
const post = (path: string, body: unknown, tls = appTls(dir, 'payments')) =>
  curl(url(path), [
    ...tls,
    ...['-H', 'content-type: application/json', '--data-binary', JSON.stringify(body)],
  ])
const scrape = (port: number, host = '127.0.0.1') => curl(`http://${host}:${port}/metrics`, [])

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-ops-'))
  const [listen, stats, enroll, authz, backend] = (await freePorts(5)) as [
    number,
    number,
    number,
    number,
    number,
  ]
  ports = { listen, stats, enroll, authz, backend }
  const init = await cli([
    ...['init', '--dir', dir, '--force', '--port', String(listen)],
    ...['--stats-port', String(stats), '--enroll-port', String(enroll)],
  ])
  expect(init.code, init.stderr).toBe(0)
  const config = parseDocument(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8'))
  config.set('metrics', { authz_port: authz, backend_port: backend })
  config.setIn(
    ['authz', 'quotas'],
    [{ name: 'ops-random', app: 'payments', operation: 'random', limit: 1, window: '1h' }],
  )
  config.setIn(['authz', 'anomalies'], [{ kind: 'first_key', action: ['alert'] }])
  writeFileSync(join(dir, 'hsmgate.yaml'), config.toString())

  up = spawn(process.execPath, [CLI, 'up', '--dir', dir], { env, stdio: 'pipe' })
  let out = ''
  up.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  up.stderr?.on('data', (chunk: Buffer) => (upStderr += chunk.toString()))
  const deadline = Date.now() + 90_000
  while (!out.includes('ready:') && Date.now() < deadline && up.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  expect(out, upStderr.slice(-2000)).toContain('ready:')
}, 180_000)

afterAll(async () => {
  if (up !== undefined && up.exitCode === null) {
    const exited = new Promise((resolve) => up?.once('exit', resolve))
    up.kill('SIGTERM')
    await exited
  }
  rmSync(dir, { recursive: true, force: true })
})

describe('gateway session', () => {
  it('serves operations, enrollment and renewal', async () => {
    for (let i = 0; i < 2; i++) {
      const text = `plaintext-${randomBytes(12).toString('hex')}`
      plaintexts.push(text)
      const message = Buffer.from(text).toString('base64')
      expect((await post('/v1/keys/payments-signing/sign', { message })).status).toBe(200)
      const sealed = await post('/v1/keys/payments-data/encrypt', {
        plaintext: message,
        context: { purpose: 'ops-test' },
      })
      expect(sealed.status, sealed.body).toBe(200)
      const opened = await post('/v1/keys/payments-data/decrypt', {
        ciphertext: sealed.json().ciphertext,
        context: { purpose: 'ops-test' },
      })
      expect(opened.status).toBe(200)
      // A wrong context is an error the backend must log without the plaintext.
      const wrong = await post('/v1/keys/payments-data/decrypt', {
        ciphertext: sealed.json().ciphertext,
        context: { purpose: 'other' },
      })
      expect(wrong.status).toBe(400)
    }
    expect((await post('/v1/keys/no-such-key/sign', { message: 'eA==' })).status).toBe(404)

    const token = await cli([
      ...['tokens', 'create', '--dir', dir, '--app', 'payments'],
      ...['--host', 'localhost,127.0.0.1', '--ttl', '10m'],
    ])
    expect(token.code, token.stderr).toBe(0)
    enrollmentToken = (JSON.parse(token.stdout) as { token: string }).token
    const agent = join(dir, 'agent-payments')
    const ca = join(dir, 'pki', 'ca.crt')
    const enrolled = await cli([
      ...['agent', 'enroll', '--gateway', `https://127.0.0.1:${ports.enroll}`],
      ...['--ca', ca, '--token', enrollmentToken, '--out', agent],
    ])
    expect(enrolled.code, enrolled.stderr).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const renewed = await cli([
      ...['agent', 'run', '--gateway', url(''), '--ca', ca, '--dir', agent, '--once', '--force'],
    ])
    expect(renewed.code, renewed.stderr).toBe(0)
  }, 120_000)

  it('rejects requests over a quota', async () => {
    expect((await post('/v1/random', { length: 16 })).status).toBe(200)
    const rejected = await post('/v1/random', { length: 16 })
    expect(rejected.status, rejected.body).toBe(429)
    expect((rejected.json().error as { code: string }).code).toBe('quota_exceeded')
  })

  it('exposes metrics on both scrape ports', async () => {
    const authz = await scrape(ports.authz)
    expect(authz.status).toBe(200)
    expect(authz.body).toMatch(
      /hsmgate_authz_decisions_total\{operation="sign",key="payments-signing",application="payments",result="allow",status="200"\} [1-9]/,
    )
    expect(authz.body).toMatch(
      /hsmgate_authz_decisions_total\{operation="sign",key="-",application="payments",result="deny",status="404"\} 1/,
    )
    expect(authz.body).toMatch(
      /hsmgate_authz_check_seconds_count\{operation="sign",result="allow"\}/,
    )
    expect(authz.body).toMatch(/hsmgate_audit_write_seconds_count\{writer="authz"\} [1-9]/)
    expect(authz.body).not.toContain('no-such-key')
    expect(authz.body).toMatch(
      /hsmgate_quota_rejections_total\{application="payments",key="-",quota="ops-random"\} 1\n/,
    )
    // first_key fired for each key that payments used first: at least its signing key.
    expect(authz.body).toMatch(
      /hsmgate_alerts_total\{rule="first_key",application="payments",severity="warning"\} [1-9]/,
    )

    const backend = await scrape(ports.backend)
    expect(backend.status).toBe(200)
    expect(backend.body).toMatch(/hsmgate_hsm_member_healthy\{member="hsm-a"\} 1/)
    expect(backend.body).toMatch(/hsmgate_hsm_member_healthy\{member="hsm-b"\} 1/)
    expect(backend.body).toMatch(/hsmgate_hsm_operations_total\{member="hsm-a"\} [1-9]/)
    expect(backend.body).toMatch(
      /hsmgate_backend_requests_total\{operation="decrypt",key="payments-data",status="400"\} 2/,
    )
    expect(backend.body).toMatch(/hsmgate_audit_write_seconds_count\{writer="backend"\} [1-9]/)
    const now = Date.now() / 1000
    for (const role of ['serving', 'ca']) {
      const match = new RegExp(
        `hsmgate_certificate_expiry_seconds\\{role="${role}"\\} (\\S+)`,
      ).exec(backend.body)
      expect(match, role).not.toBeNull()
      expect(Number(match?.[1])).toBeGreaterThan(now)
    }
    // Serials and addresses are never labels.
    expect(`${authz.body}${backend.body}`).not.toMatch(/127\.0\.0\.1|serial="/)

    const envoy = await curl(`http://127.0.0.1:${ports.stats}/stats/prometheus`, [])
    expect(envoy.status).toBe(200)
    expect(envoy.body).toContain('envoy_')
  })

  it('binds scrape ports to 127.0.0.1 only', async () => {
    await expect(scrape(ports.backend, '127.0.0.2')).rejects.toThrow()
    await expect(scrape(ports.authz, '127.0.0.2')).rejects.toThrow()
    expect((await curl(`http://127.0.0.1:${ports.backend}/other`, [])).status).toBe(404)
  })

  it('status reports processes, members and policies', async () => {
    const res = await cli(['status', '--config', join(dir, 'hsmgate.yaml'), '--json'])
    expect(res.code, res.stderr).toBe(0)
    const report = JSON.parse(res.stdout) as {
      processes: Array<{ name: string; up: boolean; pid?: number }>
      members: Array<{ name: string; state: string }>
      policy: { version: string; ids: string[] }
      certificates: Record<string, string>
    }
    expect(report.processes.map((p) => [p.name, p.up])).toEqual([
      ['envoy', true],
      ['authz', true],
      ['crypto-backend', true],
    ])
    expect(report.processes[1]?.pid).toBeGreaterThan(0)
    // Envoy's pid comes from the status file that `hsmgate up` writes for its Envoy child.
    const envoyPid = report.processes[0]?.pid ?? 0
    expect(envoyPid).toBeGreaterThan(0)
    expect(readFileSync(`/proc/${envoyPid}/cmdline`, 'utf8').split('\0')).toContain('-c')
    expect(readFileSync(`/proc/${envoyPid}/comm`, 'utf8').trim()).toBe('envoy')
    expect(report.members.map((m) => m.state)).toEqual(['healthy', 'healthy'])
    expect(report.policy.version).toMatch(/^[0-9a-f]{12}$/)
    expect(report.policy.ids).toContain('own-keys')
    expect(Date.parse(report.certificates.serving ?? '')).toBeGreaterThan(Date.now())
    expect(Date.parse(report.certificates.ca ?? '')).toBeGreaterThan(Date.now())

    const text = await cli(['status', '--config', join(dir, 'hsmgate.yaml')])
    expect(text.stdout).toMatch(/hsm-a\s+healthy/)
    expect(text.stdout).toContain('recent alerts and errors:')
  })

  it('status fails clearly after stop', async () => {
    const exited = new Promise((resolve) => up?.once('exit', resolve))
    up?.kill('SIGTERM')
    await exited
    const res = await cli(['status', '--config', join(dir, 'hsmgate.yaml')])
    expect(res.code).toBe(3)
    expect(res.stderr).toContain('is not running')
    expect(res.stdout).toBe('')
  }, 30_000)

  it('logs hold no secret', () => {
    const logDir = join(dir, 'logs')
    const logs = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), 'utf8'))
    const all = [...logs, upStderr, ...cliStderr].join('\n')
    // The scan is meaningful only when the logs are there.
    expect(all).toContain('authorization decision')
    expect(all).toContain('backend listening')
    expect(all).toContain('key generated')

    const secrets: Array<[string, string]> = []
    for (const file of readdirSync(join(dir, 'secrets'))) {
      const value = readFileSync(join(dir, 'secrets', file))
      if (file.endsWith('.pin')) secrets.push([file, value.toString('utf8').trim()])
      else secrets.push([file, value.toString('base64')], [file, value.toString('hex')])
    }
    secrets.push(['enrollment token', enrollmentToken])
    for (const text of plaintexts) {
      secrets.push(['plaintext', text], ['base64 plaintext', Buffer.from(text).toString('base64')])
    }
    for (const pem of [
      join(dir, 'agent-payments', 'client.crt'),
      join(dir, 'apps', 'payments', 'client.crt'),
      join(dir, 'pki', 'ca.crt'),
    ]) {
      const body = readFileSync(pem, 'utf8').split('\n')[1] ?? ''
      secrets.push([`certificate body of ${pem}`, body])
    }
    for (const [what, value] of secrets) {
      expect(value.length, what).toBeGreaterThan(8)
      expect(all.includes(value), `${what} found in a log`).toBe(false)
    }
    expect(all).not.toContain('PRIVATE KEY')
    expect(all).not.toContain('BEGIN CERTIFICATE')
  })
})
