import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  appTls,
  curl,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// Key namespaces through the real gateway with the starter policies: a key named payments-...
// belongs to payments, and reporting can neither create nor manage nor see it.

let gateway: TestGateway

beforeAll(async () => {
  const { dir, port } = await initGateway()
  gateway = await startUp(dir, port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

const describeKey = (app: string, name: string) =>
  curl(`${gateway.url}/v1/keys/${name}`, appTls(gateway.dir, app))

const errorOf = (res: { json: () => Record<string, unknown> }) =>
  res.json().error as { code: string; policy_ids?: string[] }

/** Retries `probe` every 250 ms for up to 10 seconds until it returns true. */
async function eventually(probe: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (await probe()) return true
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return false
}

describe('key ownership', () => {
  it('payments creates a key in its namespace', async () => {
    const res = await postJson(gateway, 'payments', '/v1/keys/payments-ledger/create', {
      type: 'ec',
    })
    expect(res.status, res.body).toBe(201)
    expect(res.json()).toMatchObject({ name: 'payments-ledger', owner: 'payments', version: 1 })
  })

  it('reporting cannot create or manage payments keys', async () => {
    const create = await postJson(gateway, 'reporting', '/v1/keys/payments-report/create', {
      type: 'ec',
    })
    expect(create.status).toBe(403)
    expect(errorOf(create).policy_ids).toEqual(['key-namespace'])
    expect((await describeKey('payments', 'payments-report')).status).toBe(404)

    for (const action of ['rotate', 'disable', 'enable', 'destroy']) {
      const res = await postJson(gateway, 'reporting', `/v1/keys/payments-ledger/${action}`, '')
      expect(res.status, action).toBe(403)
      expect(errorOf(res).code, action).toBe('forbidden')
    }
    const described = await describeKey('reporting', 'payments-ledger')
    expect(described.status).toBe(403)
    expect(described.body).not.toContain('PUBLIC KEY')

    const owner = await describeKey('payments', 'payments-ledger')
    expect(owner.status).toBe(200)
    expect(owner.json()).toMatchObject({ version: 1, state: 'enabled', owner: 'payments' })
  })

  it('backend enforces namespaces under a permissive policy', async () => {
    // Replace the starter applications.cedar with one that lacks the key-namespace forbid and
    // permits every create-key: only the backend's own check is left.
    const file = join(gateway.dir, 'policies', 'applications.cedar')
    const original = readFileSync(file, 'utf8')
    const permissive =
      '@id("create-anything")\n' +
      'permit (principal is Hsmgate::Application, action == Hsmgate::Action::"create-key", ' +
      'resource);\n'
    const replace = (text: string): void => {
      writeFileSync(`${file}.tmp`, text)
      renameSync(`${file}.tmp`, file)
    }
    replace(permissive)
    try {
      let last = { status: 0, body: '' }
      const reached = await eventually(async () => {
        last = await postJson(gateway, 'reporting', '/v1/keys/payments-squat/create', {
          type: 'ec',
        })
        return last.status === 403 && last.body.includes('key_namespace')
      })
      expect(reached, last.body).toBe(true)
      const own = await postJson(gateway, 'reporting', '/v1/keys/reporting-allowed/create', {
        type: 'ec',
      })
      expect(own.status, own.body).toBe(201)
    } finally {
      replace(original)
    }
    expect((await describeKey('payments', 'payments-squat')).status).toBe(404)
    const restored = await eventually(async () => {
      const res = await postJson(gateway, 'reporting', '/v1/keys/payments-squat/create', {})
      return res.status === 403 && res.body.includes('"key-namespace"')
    })
    expect(restored).toBe(true)
  })

  it('GET /v1/keys lists own keys only', async () => {
    const listed = async (app: string) => {
      const res = await curl(`${gateway.url}/v1/keys`, appTls(gateway.dir, app))
      expect(res.status, res.body).toBe(200)
      return res.json().keys as Array<{ name: string; owner: string }>
    }
    const reporting = await listed('reporting')
    expect(reporting.map((k) => k.name)).toContain('reporting-signing')
    expect(reporting.every((k) => k.owner === 'reporting')).toBe(true)
    expect(reporting.some((k) => k.name.startsWith('payments-'))).toBe(false)
    const payments = await listed('payments')
    expect(payments.map((k) => k.name)).toContain('payments-ledger')
    expect(payments.every((k) => k.owner === 'payments')).toBe(true)
  })
})
