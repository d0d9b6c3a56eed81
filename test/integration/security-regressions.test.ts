// Attacks on the runtime controls through a real gateway (Envoy, authz, backend, SoftHSM2). Each
// test states a property that one attacker broke before it was fixed. The attackers are an
// application host administrator with a copied key, another application, and a process that can
// write the store but cannot use the HSM.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../store/sqlite-store.js'
import {
  CLI,
  appTls,
  curl,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

const run = promisify(execFile)
let gateway: TestGateway
let dir: string

const digestOf = (text: string): string => createHash('sha256').update(text).digest('hex')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function personTls(name: string): string[] {
  const base = join(dir, 'people', name)
  return ['--cacert', join(dir, 'apps', 'payments', 'ca.crt')].concat(
    ['--cert', `${base}.crt`],
    ['--key', `${base}.key`],
  )
}

const MAX_PENDING = 5

interface StatusEvent {
  ids: Record<string, string>
  msg: string
}

/** Polls `hsmgate status --json` for up to 20 s until an event names the alert. */
async function waitForStatusAlert(alert: string): Promise<StatusEvent[]> {
  const config = join(dir, 'hsmgate.yaml')
  for (let attempt = 0; attempt < 40; attempt++) {
    const { stdout } = await run(process.execPath, [CLI, 'status', '--config', config, '--json'])
    const report = JSON.parse(stdout) as Record<string, unknown>
    const events = JSON.stringify(report).includes(alert) ? findEvents(report, alert) : []
    if (events.length > 0) return events
    await sleep(500)
  }
  return []
}

function findEvents(value: unknown, alert: string): StatusEvent[] {
  if (Array.isArray(value)) return value.flatMap((item) => findEvents(item, alert))
  if (typeof value !== 'object' || value === null) return []
  const record = value as Record<string, unknown>
  const ids = record.ids as Record<string, string> | undefined
  if (ids?.alert === alert) return [record as unknown as StatusEvent]
  return Object.values(record).flatMap((item) => findEvents(item, alert))
}

beforeAll(async () => {
  const setup = await initGateway()
  dir = setup.dir
  const configFile = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>
  config.authz = {
    ...config.authz,
    anomalies: [{ kind: 'new_source_address', action: ['alert'] }],
    approvals: {
      groups: { custodians: ['alice', 'bob'] },
      rules: [
        { operations: ['sign'], keys: ['payments-signing'], group: 'custodians', required: 2 },
        { operations: ['destroy-key'], group: 'custodians', required: 2 },
      ],
      max_pending: MAX_PENDING,
    },
  }
  config.audit = { checkpoint_interval: '1s' }
  writeFileSync(configFile, stringify(config))
  await run(process.execPath, [
    ...[CLI, 'approvals', 'identity', 'alice', '--dir', dir],
    ...['--out', join(dir, 'people')],
  ])
  gateway = await startUp(dir, setup.port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

describe('approvals API', () => {
  it('rejects a request from a foreign address', async () => {
    const body = {
      operation: 'sign',
      key: 'payments-signing',
      params_digest: digestOf('foreign'),
      uses: 1000,
      ttl: '1h',
    }
    const filed = await curl(`${gateway.url}/v1/approvals`, [
      ...appTls(dir, 'payments'),
      ...['--interface', '127.0.0.2', '-H', 'content-type: application/json'],
      ...['--data-binary', JSON.stringify(body)],
    ])
    expect(filed.status, filed.body).toBe(403)
    const listed = await curl(`${gateway.url}/v1/approvals`, [
      ...appTls(dir, 'payments'),
      ...['--interface', '127.0.0.2'],
    ])
    expect(listed.status, listed.body).toBe(403)

    // The new address also raised the anomaly alert, which `hsmgate status` lists.
    const alerts = await waitForStatusAlert('new_source_address')
    expect(alerts.length).toBeGreaterThan(0)
  }, 60_000)

  it('keeps own requests listed after another app floods', async () => {
    const own = await postJson(gateway, 'payments', '/v1/approvals', {
      operation: 'sign',
      key: 'payments-signing',
      params_digest: digestOf('legitimate'),
    })
    expect(own.status, own.body).toBe(201)
    const id = own.json().id as string
    const statuses: number[] = []
    for (let i = 0; i < 3 * MAX_PENDING; i++) {
      const flood = await postJson(gateway, 'reporting', '/v1/approvals', {
        operation: 'destroy-key',
        key: 'reporting-data',
        params_digest: i.toString(16).padStart(64, '0'),
      })
      statuses.push(flood.status)
      if (flood.status === 429) {
        const error = (flood.json() as { error: { code: string; message: string } }).error
        expect(error.code).toBe('approval_limit')
        expect(error.message).toContain('authz.approvals.max_pending')
      }
    }
    expect(statuses.filter((status) => status === 201)).toHaveLength(MAX_PENDING)
    expect(statuses.filter((status) => status === 429)).toHaveLength(2 * MAX_PENDING)

    const listed = await curl(`${gateway.url}/v1/approvals?limit=1`, personTls('alice'))
    expect(listed.status, listed.body).toBe(200)
    const reporting = await curl(`${gateway.url}/v1/approvals`, appTls(dir, 'reporting'))
    const ids = (reporting.json().approvals as Array<{ id: string }>).map((a) => a.id)
    expect(ids).toHaveLength(MAX_PENDING)
    expect(ids).not.toContain(id)
    const alice = await curl(`${gateway.url}/v1/approvals?limit=200`, personTls('alice'))
    const visible = (alice.json().approvals as Array<{ id: string }>).map((a) => a.id)
    expect(visible).toContain(id)
    expect(visible).toHaveLength(MAX_PENDING + 1)
    const bad = await curl(`${gateway.url}/v1/approvals?limit=0`, personTls('alice'))
    expect(bad.status).toBe(400)
  }, 120_000)

  it('accepts a vote with an empty body', async () => {
    const filed = await postJson(gateway, 'payments', '/v1/approvals', {
      operation: 'sign',
      key: 'payments-signing',
      params_digest: digestOf('empty vote'),
    })
    expect(filed.status, filed.body).toBe(201)
    const id = filed.json().id as string
    const voted = await curl(`${gateway.url}/v1/approvals/${id}/approve`, [
      ...personTls('alice'),
      ...['-X', 'POST'],
    ])
    expect(voted.status, voted.body).toBe(200)
    expect(voted.json().approvals).toBe(1)
    const junk = await curl(`${gateway.url}/v1/approvals/${id}/deny`, [
      ...personTls('alice'),
      ...['-H', 'content-type: application/json', '--data-binary', '{"why":"x"}'],
    ])
    expect(junk.status).toBe(400)
  })
})

describe('audit checkpoints', () => {
  it('are never signed for a fabricated writer', async () => {
    const store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
    try {
      for (let i = 1; i <= 3; i++) {
        await store.appendAudit({
          time: new Date().toISOString(),
          node: 'node-9',
          principal: 'spiffe://hsmgate.demo/app/reporting',
          certSerial: 'deadbeef',
          sourceAddress: '10.9.9.9',
          decisionId: `d_fabricated${i}`,
          operation: 'decrypt',
          key: 'payments-data',
          keyVersion: 1,
          outcome: 'ok',
          status: 200,
          errorCode: null,
          policyIds: [],
          reason: null,
          requestDigest: '0'.repeat(64),
          latencyMs: 1,
        })
      }
      // checkpoint_interval is 1s, and the backend reads the chain heads once a second.
      await sleep(4000)
      expect(await store.auditCheckpoints('node-9')).toEqual([])
      const heads = (await store.auditHeads()).map((head) => head.writer)
      const signed = await Promise.all(heads.map((w) => store.auditCheckpoints(w)))
      expect(signed.flat().every((c) => c.signer === c.writer.split('/')[0])).toBe(true)
    } finally {
      await store.close()
    }
  }, 30_000)
})
