import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPostgresInstance, type PostgresInstance } from '../helpers/postgres-instance.js'
import { createTwoNodes, type GatewayNode, type TwoNodes } from '../helpers/two-nodes.js'

// Both nodes use a private PostgreSQL server that the tests stop, start and lock. Every store
// call is bounded: 1 s to get a pooled connection (one per process), 3 s per statement.
const SCHEMA = 'hsmgate_faults'
const QUERY_TIMEOUT_MS = 3_000
/** The longest any request may take: the query timeout, the client's grace and some slack. */
const MAX_REPLY_MS = QUERY_TIMEOUT_MS + 2_000 + 1_500
const LOAD_LIMIT_MS = 40_000

interface Reply {
  node: string
  status: number
  decisionId: string | undefined
  code: string | undefined
  startedMs: number
  endedMs: number
}

let instance: PostgresInstance
let nodes: TwoNodes

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function agentFor(node: GatewayNode): Agent {
  const base = join(node.dir, 'apps', 'payments')
  return new Agent({
    ca: readFileSync(join(base, 'ca.crt')),
    cert: readFileSync(join(base, 'client.crt')),
    key: readFileSync(join(base, 'client.key')),
    keepAlive: true,
    maxSockets: 1,
  })
}

function sign(agent: Agent, node: GatewayNode, i: number): Promise<Reply> {
  const payload = Buffer.from(
    JSON.stringify({ digest: Buffer.alloc(32, i % 251).toString('base64') }),
  )
  const startedMs = performance.now()
  const reply = (status: number, decisionId?: string, code?: string): Reply => ({
    node: node.id,
    status,
    decisionId,
    code,
    startedMs,
    endedMs: performance.now(),
  })
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: node.port,
        method: 'POST',
        path: '/v1/keys/payments-signing/sign',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 20_000,
      },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.on('end', () => {
          const id = res.headers['x-hsmgate-decision-id']
          const code = /"code":"([a-z_]+)"/.exec(body)?.[1]
          resolve(reply(res.statusCode ?? 0, typeof id === 'string' ? id : undefined, code))
        })
      },
    )
    req.on('error', (error) => resolve(reply(0, undefined, error.message)))
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.end(payload)
  })
}

/** Runs `clients` clients per node until `until` returns true. */
async function runLoad(clients: number, until: () => boolean): Promise<Reply[]> {
  const replies: Reply[] = []
  const deadline = Date.now() + LOAD_LIMIT_MS
  const client = async (node: GatewayNode, index: number): Promise<void> => {
    const agent = agentFor(node)
    for (let i = index; !until() && Date.now() < deadline; i++) {
      replies.push(await sign(agent, node, i))
    }
    agent.destroy()
  }
  const all = [nodes.a, nodes.b].flatMap((node) =>
    Array.from({ length: clients }, (_, i) => client(node, i)),
  )
  await Promise.all(all)
  return replies
}

/** Returns the pids of a node's process group: hsmgate up, authz, backend and Envoy. */
async function groupPids(node: GatewayNode): Promise<number[]> {
  const { stdout } = await promisify(execFile)('ps', ['-o', 'pid=', '-g', String(node.up!.pid)])
  return stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0)
    .sort((x, y) => x - y)
}

async function query<Row extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
  const client = new pg.Client({
    connectionString: instance.url(),
    options: `-c search_path=${SCHEMA}`,
  })
  await client.connect()
  try {
    return (await client.query<Row>(sql, params)).rows
  } finally {
    await client.end()
  }
}

/** Fails when a reply acknowledged with 200 has no audit record of the backend. */
async function expectAudited(replies: Reply[]): Promise<void> {
  const ok = replies.filter((reply) => reply.status === 200)
  const ids = ok.map((reply) => reply.decisionId)
  expect(ids.every((id) => typeof id === 'string')).toBe(true)
  const rows = await query<{ decision_id: string }>(
    `SELECT decision_id FROM audit WHERE node IN ('node-a', 'node-b') AND status = 200
       AND decision_id = ANY($1)`,
    [ids],
  )
  const audited = new Set(rows.map((row) => row.decision_id))
  const missing = ok.filter((reply) => !audited.has(reply.decisionId!))
  expect(missing, `acknowledged without an audit record: ${JSON.stringify(missing)}`).toEqual([])
}

function summary(replies: Reply[]): string {
  const counts = new Map<string, number>()
  for (const reply of replies) {
    const key = `${reply.status}${reply.code === undefined ? '' : ` ${reply.code}`}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return JSON.stringify(Object.fromEntries(counts))
}

beforeAll(async () => {
  instance = await startPostgresInstance()
  nodes = await createTwoNodes({
    store: {
      url: instance.url(),
      schema: SCHEMA,
      pool_size: 1,
      connect_timeout: '500ms',
      acquire_timeout: '1s',
      query_timeout: `${QUERY_TIMEOUT_MS}ms`,
    },
  })
  await nodes.start(nodes.a)
  await nodes.start(nodes.b)
}, 240_000)

afterAll(async () => {
  await nodes?.cleanup()
  await instance?.cleanup()
}, 60_000)

describe('two gateway nodes when PostgreSQL fails', () => {
  it('fail closed while PostgreSQL is down and recover after it starts', async () => {
    const pidsBefore = [await groupPids(nodes.a), await groupPids(nodes.b)]
    let stop = false
    const load = runLoad(2, () => stop)
    await sleep(2_000)
    await instance.stop('fast')
    const downMs = performance.now()
    await sleep(4_000)
    const upMs = performance.now()
    await instance.start()
    await sleep(6_000)
    stop = true
    const replies = await load
    console.info(`PostgreSQL stopped under load: ${summary(replies)}`)

    // Requests that ran entirely while the server was down all failed with 503.
    const whileDown = replies.filter((r) => r.startedMs > downMs && r.endedMs < upMs)
    expect(whileDown.length).toBeGreaterThan(4)
    expect(whileDown.filter((r) => r.status !== 503)).toEqual([])
    // authz denies with store_unavailable, or audit_unavailable when even its record of the
    // deny cannot be written; an empty body is Envoy's own 503 for an authz timeout.
    const codes = new Set(whileDown.map((r) => r.code ?? 'none'))
    expect(
      [...codes].filter((c) => !['store_unavailable', 'audit_unavailable', 'none'].includes(c)),
    ).toEqual([])
    // No request waited longer than the configured timeouts allow.
    const slowest = Math.max(...replies.map((r) => r.endedMs - r.startedMs))
    expect(slowest).toBeLessThan(MAX_REPLY_MS)

    // Both nodes serve again without a restart of any of their processes.
    const lastSeconds = replies.filter((r) => r.startedMs > upMs + 4_000)
    for (const node of ['node-a', 'node-b']) {
      const recent = lastSeconds.filter((r) => r.node === node)
      expect(recent.length, node).toBeGreaterThan(0)
      expect(
        recent.filter((r) => r.status !== 200),
        node,
      ).toEqual([])
    }
    expect([await groupPids(nodes.a), await groupPids(nodes.b)]).toEqual(pidsBefore)
    await expectAudited(replies)
  }, 90_000)

  it('answers 503 without hanging while a statement blocks the only connection', async () => {
    const locker = new pg.Client({
      connectionString: instance.url(),
      options: `-c search_path=${SCHEMA}`,
    })
    await locker.connect()
    let replies: Reply[] = []
    try {
      // Every request of an application reads its row, so authz's one connection waits here.
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE applications IN ACCESS EXCLUSIVE MODE')
      let stop = false
      const load = runLoad(2, () => stop)
      await sleep(5_000)
      stop = true
      replies = await load
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined)
      await locker.end()
    }
    console.info(`blocked statement: ${summary(replies)}`)
    expect(replies.length).toBeGreaterThan(4)
    expect(replies.filter((r) => r.status !== 503)).toEqual([])
    const slowest = Math.max(...replies.map((r) => r.endedMs - r.startedMs))
    expect(slowest).toBeLessThan(MAX_REPLY_MS)

    // Once the lock is gone, the same clients are served again.
    const after = await runLoad(
      1,
      (() => {
        const end = Date.now() + 2_000
        return () => Date.now() > end
      })(),
    )
    expect(after.filter((r) => r.status === 200).length).toBeGreaterThan(0)
    await expectAudited([...replies, ...after])
  }, 60_000)
})
