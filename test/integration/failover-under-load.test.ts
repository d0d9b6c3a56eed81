import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { curl, initGateway, startUp, type TestGateway } from '../helpers/gateway-process.js'

// Member hsm-a reaches its SoftHSM2 token through `p11-kit server` and p11-kit-client.so (from
// the p11-kit and p11-kit-modules packages that deploy/install.sh installs), so killing the
// server takes the member away from the running backend and starting it again brings it back.
// hsm-b uses libsofthsm2.so directly.
const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so'
const P11_KIT_CLIENT = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so'
const CLIENTS = 8
const LOAD_LIMIT_MS = 60_000

interface Tally {
  ok: number
  failures: { status: number; body: string }[]
}

let gateway: TestGateway | undefined
let dir = ''
let server: ChildProcess | undefined

/** Starts `p11-kit server` for token hsmgate-a in its own process group. */
async function startP11Server(): Promise<ChildProcess> {
  const socket = join(dir, 'run', 'p11-hsm-a.sock')
  const child = spawn(
    'p11-kit',
    ['server', '-f', '-n', socket, '--provider', SOFTHSM, 'pkcs11:token=hsmgate-a'],
    {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, SOFTHSM2_CONF: join(dir, 'hsm', 'softhsm2.conf') },
    },
  )
  for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50)
  if (!existsSync(socket)) throw new Error(`p11-kit server did not create ${socket} in 5 s`)
  return child
}

/** Kills the p11-kit server and the per-connection processes it forked. */
function killP11Server(child: ChildProcess | undefined): void {
  if (child?.pid === undefined || child.exitCode !== null) return
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // The group has already exited.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Points member hsm-a at p11-kit-client.so and the server's socket. */
function routeMemberAThroughP11Kit(): void {
  const file = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(file, 'utf8')) as {
    hsm: { environment: Record<string, string>; members: { name: string; module: string }[] }
  }
  config.hsm.environment.P11_KIT_SERVER_ADDRESS = `unix:path=${join(dir, 'run', 'p11-hsm-a.sock')}`
  const memberA = config.hsm.members.find((m) => m.name === 'hsm-a')
  if (memberA === undefined) throw new Error('hsmgate init wrote no member hsm-a')
  memberA.module = P11_KIT_CLIENT
  writeFileSync(file, stringify(config))
}

function post(
  agent: Agent,
  path: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  const payload = Buffer.from(JSON.stringify(body))
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: gateway?.port,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 30_000,
      },
      (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', (error) => resolve({ status: 0, body: error.message }))
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.end(payload)
  })
}

/**
 * Runs CLIENTS keep-alive clients that sign with ECDSA P-256.
 * NOTE: the load has no AES-GCM encryption because the RPC of p11-kit 0.24.1 rejects
 * CKM_AES_GCM with CKR_MECHANISM_INVALID, so every encryption on hsm-a would fail.
 */
function runLoad(until: () => boolean): Promise<Tally> {
  const base = join(dir, 'apps', 'payments')
  const tls = {
    ca: readFileSync(join(base, 'ca.crt')),
    cert: readFileSync(join(base, 'client.crt')),
    key: readFileSync(join(base, 'client.key')),
  }
  const tally: Tally = { ok: 0, failures: [] }
  const deadline = Date.now() + LOAD_LIMIT_MS
  const client = async (index: number): Promise<void> => {
    const agent = new Agent({ ...tls, keepAlive: true, maxSockets: 1 })
    try {
      for (let i = index; !until() && Date.now() < deadline; i++) {
        const result = await post(agent, '/v1/keys/payments-signing/sign', {
          digest: Buffer.alloc(32, i % 251).toString('base64'),
        })
        if (result.status === 200) tally.ok += 1
        else tally.failures.push(result)
      }
    } finally {
      agent.destroy()
    }
  }
  return Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i))).then(() => tally)
}

interface MemberHealth {
  name: string
  state: string
  counters: { operations: number; failovers: number; recoveries: number; retries: number }
}

async function members(): Promise<MemberHealth[]> {
  const pki = join(dir, 'pki')
  const tls = [
    '--cacert',
    `${pki}/ca.crt`,
    '--cert',
    `${pki}/probe.crt`,
    '--key',
    `${pki}/probe.key`,
  ]
  const health = await curl(`${gateway?.url}/v1/health`, tls)
  return health.json().members as MemberHealth[]
}

async function memberA(): Promise<MemberHealth> {
  const found = (await members()).find((m) => m.name === 'hsm-a')
  if (found === undefined) throw new Error('health lists no member hsm-a')
  return found
}

/** Polls the health endpoint until hsm-a is in `state`; gives up after `limitMs`. */
async function waitForMemberA(state: string, limitMs: number): Promise<MemberHealth> {
  const deadline = Date.now() + limitMs
  let last = await memberA()
  while (last.state !== state && Date.now() < deadline) {
    await sleep(200)
    last = await memberA()
  }
  return last
}

beforeAll(async () => {
  const init = await initGateway()
  dir = init.dir
  // The first start creates the audit signing key and replicates it with CKM_AES_KEY_WRAP_PAD,
  // which the RPC of p11-kit 0.24.1 rejects with CKR_MECHANISM_INVALID, so it runs with both
  // members on libsofthsm2.so.
  const first = await startUp(dir, init.port)
  await first.stop()
  server = await startP11Server()
  routeMemberAThroughP11Kit()
  gateway = await startUp(dir, init.port)
}, 180_000)

afterAll(async () => {
  killP11Server(server)
  await gateway?.stop()
  gateway?.cleanup()
})

describe('cluster failover through the gateway', () => {
  it('keeps serving while member A goes away and rejoins', async () => {
    const before = await memberA()
    expect(before.state).toBe('healthy')

    let stop = false
    const load = runLoad(() => stop)
    await sleep(2_000)
    const beforeKill = await memberA()
    expect(beforeKill.counters.operations).toBeGreaterThan(before.counters.operations)

    killP11Server(server)
    const failed = await waitForMemberA('failed', 10_000)
    expect(failed.state, JSON.stringify(failed)).toBe('failed')
    expect(failed.counters.failovers).toBe(before.counters.failovers + 1)
    await sleep(1_500)

    server = await startP11Server()
    const rejoined = await waitForMemberA('healthy', 20_000)
    expect(rejoined.state, JSON.stringify(rejoined)).toBe('healthy')
    expect(rejoined.counters.recoveries).toBe(before.counters.recoveries + 1)
    await sleep(2_000)
    stop = true
    const tally = await load

    const after = await memberA()
    expect(after.state).toBe('healthy')
    // Requests reach A again after it rejoined.
    expect(after.counters.operations).toBeGreaterThan(rejoined.counters.operations)
    console.info(`members after the run: ${JSON.stringify(await members())}`)

    // Only requests in flight on A when it went away may fail: at most its pool_size (4).
    // Each of them must be a 503 with an HSM error code, never another status.
    console.info(
      `failover under load: ${tally.ok} requests succeeded, ${tally.failures.length} failed` +
        ` (${[...new Set(tally.failures.map((f) => `${f.status} ${f.body}`))].join('; ') || 'none'})`,
    )
    expect(tally.ok).toBeGreaterThan(100)
    expect(tally.failures.length).toBeLessThanOrEqual(4)
    for (const failure of tally.failures) {
      expect(failure.status, failure.body).toBe(503)
      expect(failure.body).toMatch(/"code":"hsm_/)
    }
  }, 120_000)
})
