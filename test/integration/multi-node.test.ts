import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appTls, CLI, curl, execFileAsync } from '../helpers/gateway-process.js'
import { PostgresStore } from '../../store/postgres/postgres-store.js'
import { testSchema, type TestSchema } from '../helpers/postgres-schema.js'
import { createTwoNodes, type GatewayNode, type TwoNodes } from '../helpers/two-nodes.js'

// Two gateway nodes on loopback share one PostgreSQL schema and the two SoftHSM2 tokens of one
// `hsmgate init` setup. Each node runs its own Envoy, authz and crypto backend.
const CLIENTS = 6
const QUOTA_LIMIT = 6
const LOAD_LIMIT_MS = 30_000

interface Reply {
  node: string
  status: number
  decisionId: string | undefined
  body: string
}

let schema: TestSchema
let nodes: TwoNodes

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function clientTls(node: GatewayNode, app: string) {
  const base = join(node.dir, 'apps', app)
  return {
    ca: readFileSync(join(base, 'ca.crt')),
    cert: readFileSync(join(base, 'client.crt')),
    key: readFileSync(join(base, 'client.key')),
  }
}

/** Signs one digest through a node's Envoy; a connection error gives status 0. */
function sign(agent: Agent, node: GatewayNode, app: string, i: number): Promise<Reply> {
  const payload = Buffer.from(
    JSON.stringify({ digest: Buffer.alloc(32, i % 251).toString('base64') }),
  )
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: node.port,
        method: 'POST',
        path: `/v1/keys/${app}-signing/sign`,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 10_000,
      },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.on('end', () => {
          const id = res.headers['x-hsmgate-decision-id']
          resolve({
            node: node.id,
            status: res.statusCode ?? 0,
            decisionId: typeof id === 'string' ? id : undefined,
            body,
          })
        })
      },
    )
    req.on('error', (error) =>
      resolve({ node: node.id, status: 0, decisionId: undefined, body: error.message }),
    )
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.end(payload)
  })
}

/**
 * Runs CLIENTS keep-alive clients, spread over both nodes, until `until` returns true. A client
 * whose node stops answering moves to the other node, as a load balancer's health check would.
 */
function runLoad(until: () => boolean): Promise<Reply[]> {
  const replies: Reply[] = []
  const deadline = Date.now() + LOAD_LIMIT_MS
  const client = async (index: number): Promise<void> => {
    let node = index % 2 === 0 ? nodes.a : nodes.b
    let agent = new Agent({ ...clientTls(node, 'payments'), keepAlive: true, maxSockets: 1 })
    for (let i = index; !until() && Date.now() < deadline; i++) {
      const reply = await sign(agent, node, 'payments', i)
      replies.push(reply)
      if (reply.status === 0 && node === nodes.a) {
        agent.destroy()
        node = nodes.b
        agent = new Agent({ ...clientTls(node, 'payments'), keepAlive: true, maxSockets: 1 })
      }
    }
    agent.destroy()
  }
  return Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i))).then(() => replies)
}

/** Signs one digest through a node with curl, as the application's host would. */
function curlSign(node: GatewayNode, app: string) {
  return curl(`${node.url}/v1/keys/${app}-signing/sign`, [
    ...appTls(node.dir, app),
    '-H',
    'content-type: application/json',
    '--data-binary',
    JSON.stringify({ digest: Buffer.alloc(32, 7).toString('base64') }),
  ])
}

/**
 * Connects to a node with `openssl s_client` and the application's certificate, sends one
 * request and returns the TLS alert the server sent, or '' when the connection was accepted.
 */
async function handshakeAlert(node: GatewayNode, app: string): Promise<string> {
  const base = join(node.dir, 'apps', app)
  const args = ['s_client', '-connect', `127.0.0.1:${node.port}`, '-CAfile', join(base, 'ca.crt')]
  args.push('-cert', join(base, 'client.crt'), '-key', join(base, 'client.key'), '-quiet')
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stdin.end('GET /v1/keys HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await new Promise((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  return /alert ([a-z ]+)/.exec(output)?.[1]?.trim() ?? ''
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

beforeAll(async () => {
  schema = testSchema()
  nodes = await createTwoNodes({
    store: { url: schema.url, schema: schema.schema, pool_size: 4, acquire_timeout: '1s' },
    authz: {
      quotas: [
        {
          name: 'reporting-signs',
          app: 'reporting',
          operation: 'sign',
          limit: QUOTA_LIMIT,
          window: '1m',
        },
      ],
    },
    audit: { checkpoint_records: 20, checkpoint_interval: '1s' },
  })
  await nodes.start(nodes.a)
  await nodes.start(nodes.b)
}, 240_000)

afterAll(async () => {
  await nodes?.cleanup()
  await schema?.drop()
}, 60_000)

describe('two gateway nodes on one PostgreSQL schema', () => {
  it('share one quota between both nodes', async () => {
    const agents = [nodes.a, nodes.b].map(
      (node) => new Agent({ ...clientTls(node, 'reporting'), keepAlive: true, maxSockets: 1 }),
    )
    const replies: Reply[] = []
    for (let i = 0; i < QUOTA_LIMIT + 4; i++) {
      const node = i % 2 === 0 ? nodes.a : nodes.b
      replies.push(await sign(agents[i % 2]!, node, 'reporting', i))
    }
    for (const agent of agents) agent.destroy()
    const statuses = replies.map((reply) => reply.status)
    expect(statuses.filter((status) => status === 200)).toHaveLength(QUOTA_LIMIT)
    expect(statuses.slice(QUOTA_LIMIT)).toEqual([429, 429, 429, 429])
    // Each node alone served only half the limit, so only a shared counter denies here.
    expect(replies.filter((r) => r.node === 'node-a' && r.status === 200)).toHaveLength(3)
    expect(replies.filter((r) => r.node === 'node-b' && r.status === 429)).toHaveLength(2)
  })

  it('keeps serving and auditing when node A is killed under load', async () => {
    let stop = false
    const load = runLoad(() => stop)
    await sleep(3_000)
    await nodes.kill(nodes.a)
    const killedAt = Date.now()
    await sleep(4_000)
    stop = true
    const replies = await load

    const ok = replies.filter((reply) => reply.status === 200)
    const fromA = ok.filter((reply) => reply.node === 'node-a')
    const fromB = ok.filter((reply) => reply.node === 'node-b')
    const failedOnB = replies.filter((reply) => reply.node === 'node-b' && reply.status !== 200)
    console.info(
      `load: ${fromA.length} ok on node-a, ${fromB.length} ok on node-b, ` +
        `${replies.length - ok.length} failed, killed at +${killedAt % 100_000}`,
    )
    expect(fromA.length).toBeGreaterThan(10)
    expect(fromB.length).toBeGreaterThan(10)
    expect(failedOnB, JSON.stringify(failedOnB.slice(0, 3))).toEqual([])
    // Replies that arrive after the kill come from node B only.
    expect(replies.filter((reply) => reply.node === 'node-a' && reply.status !== 0).length).toBe(
      fromA.length,
    )

    const acknowledged = ok.map((reply) => reply.decisionId)
    expect(acknowledged.every((id) => typeof id === 'string')).toBe(true)
    const audited = await schema.query<{ decision_id: string; node: string; status: number }>(
      `SELECT decision_id, node, status FROM audit
       WHERE node IN ('node-a', 'node-b') AND decision_id = ANY($1)`,
      [acknowledged],
    )
    const byId = new Map(audited.map((row) => [row.decision_id, row]))
    const missing = ok.filter((reply) => !byId.has(reply.decisionId!))
    expect(missing, `acknowledged without an audit record: ${JSON.stringify(missing)}`).toEqual([])
    for (const reply of ok) {
      expect(byId.get(reply.decisionId!)).toMatchObject({ node: reply.node, status: 200 })
    }
  }, 60_000)

  it('enforces on node B a suspension made with node A config', async () => {
    expect((await curlSign(nodes.b, 'payments')).status).toBe(200)

    const suspended = await cli(['apps', 'suspend', 'payments', '--dir', nodes.a.dir])
    expect(suspended.code, suspended.stderr).toBe(0)
    const suspendedAt = performance.now()
    let status = 0
    while (performance.now() - suspendedAt < 1_000) {
      status = (await curlSign(nodes.b, 'payments')).status
      if (status === 403) break
      await sleep(50)
    }
    const elapsed = performance.now() - suspendedAt
    expect(status).toBe(403)
    expect(elapsed).toBeLessThan(1_000)

    const resumed = await cli(['apps', 'resume', 'payments', '--dir', nodes.a.dir])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect((await curlSign(nodes.b, 'payments')).status).toBe(200)
  })

  it('verifies the audit chains of both nodes with both audit keys', async () => {
    const keyA = join(nodes.a.dir, 'pki', 'audit-keys.pem')
    const keyB = join(nodes.b.dir, 'pki', 'audit-keys.pem')
    const config = join(nodes.b.dir, 'hsmgate.yaml')
    const both = await cli([
      'audit',
      'verify',
      '--config',
      config,
      '--public-key',
      keyA,
      '--public-key',
      keyB,
      '--json',
    ])
    expect(both.code, both.stdout + both.stderr).toBe(0)
    const result = JSON.parse(both.stdout) as {
      writers: { writer: string; validCheckpoints: number }[]
    }
    const writers = result.writers.map((w) => w.writer)
    expect(writers).toEqual(['node-a', 'node-a/authz', 'node-b', 'node-b/authz'])
    for (const writer of result.writers) {
      expect(writer.validCheckpoints, writer.writer).toBeGreaterThan(0)
    }

    // Node B's key alone does not vouch for node A's checkpoints.
    const onlyB = await cli(['audit', 'verify', '--config', config, '--public-key', keyB])
    expect(onlyB.code).toBe(1)
    expect(onlyB.stdout).toMatch(/FAIL node-a seq \d+: .*not a trusted audit key/)
  })

  it('refuses a certificate revoked elsewhere at node B TLS layer', async () => {
    expect(await handshakeAlert(nodes.b, 'reporting')).toBe('')

    // Any node revokes by one conditional update of the shared certificates table, as
    // 'hsmgate certs revoke' does; node B learns of it only through the store.
    const [certificate] = await schema.query<{ serial: string }>(
      "SELECT serial FROM certificates WHERE app = 'reporting' AND status = 'active'",
    )
    const store = await PostgresStore.open(schema.options())
    try {
      const at = new Date().toISOString()
      expect(await store.revokeCertificate(certificate!.serial, 'keyCompromise', at)).toBe(true)
    } finally {
      await store.close()
    }
    const revokedAt = performance.now()
    // Until the new CRL reaches Envoy, authz denies the certificate from the store's record.
    const early = await curl(`${nodes.b.url}/v1/keys`, appTls(nodes.b.dir, 'reporting')).catch(
      () => undefined,
    )
    if (early !== undefined) expect(early.status).toBe(401)
    let alert = ''
    while (performance.now() - revokedAt < 8_000) {
      alert = await handshakeAlert(nodes.b, 'reporting')
      if (alert !== '') break
      await sleep(200)
    }
    const elapsed = performance.now() - revokedAt
    console.info(`node B refused the revoked certificate at TLS after ${Math.round(elapsed)} ms`)
    expect(alert).toMatch(/certificate revoked/)
    // The revocation watch polls every second; the periodic TLS check alone runs every 10 s.
    expect(elapsed).toBeLessThan(3_000)
  })
})
