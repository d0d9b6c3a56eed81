import { spawn, type ChildProcess } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { copyFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CLI,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// `hsmgate agent run` as a daemon against the real gateway (Envoy, authz, backend, SoftHSM2).
// Client certificates live 5 minutes, the shortest lifetime the gateway allows. Their notBefore
// is backdated by 60 s, so each one is valid for 4 minutes after issuance. With --renew-at 0.25
// the agent renews 15 s after each issuance.

let gateway: TestGateway
let dir: string
let port: number
let enrollUrl: string
let agent: RunningAgent | undefined

const ca = () => join(dir, 'pki', 'ca.crt')
const agentDir = () => join(dir, 'agent')
const reloadDir = () => join(dir, 'reload')

beforeAll(async () => {
  let enrollPort: number
  ;({ dir, port, enrollPort } = await initGateway())
  const file = join(dir, 'hsmgate.yaml')
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace('\npki:\n', '\npki:\n  client_lifetime: 5m\n'),
  )
  gateway = await startUp(dir, port)
  enrollUrl = `https://127.0.0.1:${enrollPort}`
}, 180_000)

afterAll(async () => {
  agent?.process.kill('SIGKILL')
  await gateway?.stop()
  gateway?.cleanup()
})

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'info' },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** One JSON log line of the agent. */
interface LogLine {
  time: number
  msg: string
  attempt?: number
  retry_in_ms?: number | null
  [field: string]: unknown
}

/** An `hsmgate agent run` process with its output collected as it arrives. */
interface RunningAgent {
  process: ChildProcess
  stdout: () => string[]
  logs: () => LogLine[]
  exited: Promise<number | null>
}

function startAgent(agentPath: string, extra: string[]): RunningAgent {
  const child = spawn(
    process.execPath,
    [CLI, 'agent', 'run', '--gateway', gateway.url, '--ca', ca(), '--dir', agentPath, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HSMGATE_LOG_LEVEL: 'info' } },
  )
  let out = ''
  let err = ''
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const parse = (line: string): LogLine => {
    try {
      return JSON.parse(line) as LogLine
    } catch {
      return { time: 0, msg: line }
    }
  }
  return {
    process: child,
    stdout: () => out.split('\n').filter((l) => l !== ''),
    logs: () =>
      err
        .split('\n')
        .filter((l) => l !== '')
        .map(parse),
    exited: new Promise((resolve) => child.once('exit', resolve)),
  }
}

/** Polls `condition` every 200 ms until it returns true or `timeoutMs` passes. */
async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > end) {
      const logs = agent
        ?.logs()
        .map((l) => l.msg)
        .join('\n')
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; agent log:\n${logs}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** Reads the certificate and key files of an agent directory and what identifies them. */
function snapshot(path: string) {
  const certFile = join(path, 'client.crt')
  const keyFile = join(path, 'client.key')
  const leaf = new X509Certificate(readFileSync(certFile))
  const keyPem = readFileSync(keyFile, 'utf8')
  return {
    serial: leaf.serialNumber,
    keyPem,
    keyMatches: leaf.checkPrivateKey(createPrivateKey(keyPem)),
    publicKey: leaf.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
    certInode: statSync(certFile).ino,
    keyInode: statSync(keyFile).ino,
    certMode: statSync(certFile).mode & 0o777,
    keyMode: statSync(keyFile).mode & 0o777,
  }
}

async function enrollAgent(app: string, out: string): Promise<void> {
  const created = await cli([
    ...['tokens', 'create', '--dir', dir, '--app', app],
    ...['--host', 'localhost,127.0.0.1', '--ttl', '10m'],
  ])
  expect(created.code, created.stderr).toBe(0)
  const token = (JSON.parse(created.stdout) as { token: string }).token
  const enrolled = await cli([
    ...['agent', 'enroll', '--gateway', enrollUrl, '--ca', ca()],
    ...['--token', token, '--out', out],
  ])
  expect(enrolled.code, enrolled.stderr).toBe(0)
}

const renewals = () => agent!.stdout().filter((line) => line.includes('"renewed":true')).length
const retries = () => agent!.logs().filter((l) => l.msg === 'renewal failed; retrying')

describe('agent run as a daemon', () => {
  const seen: Array<ReturnType<typeof snapshot>> = []

  it('renews twice with a new key each time', async () => {
    await enrollAgent('payments', agentDir())
    copyFileSync(join(agentDir(), 'client.crt'), join(dir, 'first.crt'))
    copyFileSync(join(agentDir(), 'client.key'), join(dir, 'first.key'))
    seen.push(snapshot(agentDir()))
    mkdirSync(reloadDir(), { recursive: true })
    // The reload command fails the first time and succeeds after; each run appends a line.
    const log = join(reloadDir(), 'reload.log')
    const marker = join(reloadDir(), 'failed-once')
    const reload =
      `if [ -e '${marker}' ]; then echo ok >> '${log}'; ` +
      `else touch '${marker}'; echo failed >> '${log}'; exit 3; fi`
    agent = startAgent(agentDir(), [
      ...['--renew-at', '0.25', '--retry-initial', '500ms', '--retry-max', '4s'],
      ...['--reload-command', reload],
    ])

    for (const count of [1, 2]) {
      await waitFor(`renewal ${count}`, () => renewals() >= count, 60_000)
      seen.push(snapshot(agentDir()))
    }
    const [first, second, third] = seen as [(typeof seen)[0], (typeof seen)[0], (typeof seen)[0]]
    expect(new Set([first.serial, second.serial, third.serial]).size).toBe(3)
    expect(new Set([first.publicKey, second.publicKey, third.publicKey]).size).toBe(3)
    expect(new Set([first.keyPem, second.keyPem, third.keyPem]).size).toBe(3)
    for (const state of [second, third]) {
      expect(state.keyMatches).toBe(true)
      expect(state.certMode).toBe(0o600)
      expect(state.keyMode).toBe(0o600)
    }
    // Each renewal renames new files into place, so every file is a new inode.
    expect(second.certInode).not.toBe(first.certInode)
    expect(third.certInode).not.toBe(second.certInode)
    expect(third.keyInode).not.toBe(second.keyInode)
    await execFileAsync('openssl', ['verify', '-CAfile', ca(), join(agentDir(), 'client.crt')])

    expect(readFileSync(log, 'utf8')).toBe('failed\nok\n')
    const messages = agent.logs().map((l) => l.msg)
    expect(messages).toContain('reload command failed')
    expect(messages).toContain('reload command succeeded')
  }, 150_000)

  it('retries with capped backoff while the gateway is down', async () => {
    const before = renewals()
    await gateway.stop()
    await waitFor('six failed attempts', () => retries().length >= 6, 90_000)
    const attempts = retries()
    const ceiling = (i: number) => Math.min(4_000, 500 * 2 ** i)
    for (const [i, line] of attempts.entries()) {
      expect(line.attempt).toBe(i + 1)
      expect(line.retry_in_ms).toBeGreaterThanOrEqual(0)
      // Full jitter draws below the ceiling, and the ceiling stops growing at --retry-max.
      expect(line.retry_in_ms).toBeLessThan(ceiling(i))
    }
    expect(new Set(attempts.map((l) => l.retry_in_ms)).size).toBeGreaterThan(1)
    for (let i = 1; i < attempts.length; i++) {
      const gap = attempts[i]!.time - attempts[i - 1]!.time
      const waited = attempts[i - 1]!.retry_in_ms as number
      expect(gap).toBeGreaterThanOrEqual(waited - 5)
      expect(gap).toBeLessThan(waited + 3_000)
    }

    gateway = await startUp(dir, port)
    await waitFor('renewal after the gateway came back', () => renewals() > before, 60_000)
    const last = agent!.logs().filter((l) => l.msg === 'renewed; files written')
    expect(last.length).toBe(before + 1)
    expect(snapshot(agentDir()).keyMatches).toBe(true)
  }, 180_000)

  it('stops on SIGTERM without partial files', async () => {
    const running = agent!
    running.process.kill('SIGTERM')
    const code = await Promise.race([
      running.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), 40_000)),
    ])
    expect(code).toBe(0)
    expect(running.logs().map((l) => l.msg)).toContain('agent stopped')
    expect(readdirSync(agentDir()).sort()).toEqual(['client.crt', 'client.key'])
    expect(snapshot(agentDir()).keyMatches).toBe(true)
    agent = undefined
  }, 60_000)
})

describe('agent run stops on a rejection', () => {
  /** Runs the agent until it exits by itself; fails the test if it keeps running. */
  async function runUntilExit(path: string): Promise<{ code: number | null; agent: RunningAgent }> {
    agent = startAgent(path, ['--renew-at', '0.1', '--retry-initial', '500ms', '--retry-max', '2s'])
    const code = await Promise.race([
      agent.exited,
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 30_000)),
    ])
    const finished = agent
    if (code === 'running') agent.process.kill('SIGKILL')
    agent = undefined
    expect(code, 'the agent still retried after 30 s').not.toBe('running')
    return { code: code as number | null, agent: finished }
  }

  const attempts = (running: RunningAgent) =>
    running.logs().filter((l) => l.msg.startsWith('renewal failed'))

  it('stops when superseded', async () => {
    const stale = join(dir, 'stale')
    mkdirSync(stale, { mode: 0o700 })
    copyFileSync(join(dir, 'first.crt'), join(stale, 'client.crt'))
    copyFileSync(join(dir, 'first.key'), join(stale, 'client.key'))
    const { code, agent: finished } = await runUntilExit(stale)
    expect(code).toBe(1)
    expect(
      finished
        .logs()
        .map((l) => l.msg)
        .join('\n'),
    ).toContain('certificate_superseded')
    expect(attempts(finished)).toHaveLength(1)
    expect(readFileSync(join(stale, 'client.crt'))).toEqual(readFileSync(join(dir, 'first.crt')))
  }, 60_000)

  it('stops when revoked', async () => {
    const revokedDir = join(dir, 'revoked')
    await enrollAgent('reporting', revokedDir)
    const serial = new X509Certificate(readFileSync(join(revokedDir, 'client.crt'))).serialNumber
    const revoked = await cli(['certs', 'revoke', '--dir', dir, '--serial', serial])
    expect(revoked.code, revoked.stderr).toBe(0)
    const { code, agent: finished } = await runUntilExit(revokedDir)
    expect(code).toBe(1)
    expect(
      finished
        .logs()
        .map((l) => JSON.stringify(l))
        .join('\n'),
    ).toMatch(/revoked/)
    expect(attempts(finished)).toHaveLength(1)
  }, 60_000)

  it('stops when expired', async () => {
    const expiredDir = join(dir, 'expired')
    mkdirSync(expiredDir, { mode: 0o700 })
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        name: 'CN=payments',
        notBefore: new Date(Date.now() - 3_600_000),
        notAfter: new Date(Date.now() - 60_000),
        keys,
        signingAlgorithm: algorithm,
      },
      crypto,
    )
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey))
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`
    writeFileSync(join(expiredDir, 'client.key'), keyPem, { mode: 0o600 })
    writeFileSync(join(expiredDir, 'client.crt'), cert.toString('pem'))
    chmodSync(expiredDir, 0o700)
    const { code, agent: finished } = await runUntilExit(expiredDir)
    expect(code).toBe(1)
    expect(
      finished
        .logs()
        .map((l) => l.msg)
        .join('\n'),
    ).toMatch(/expired at .*enroll again/)
    expect(attempts(finished)).toHaveLength(0)
    expect(existsSync(join(expiredDir, 'client.key.next'))).toBe(false)
  }, 60_000)
})
