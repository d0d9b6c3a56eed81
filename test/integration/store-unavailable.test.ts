import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Hono } from 'hono'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCheckHandler } from '../../authz/check.js'
import type { DecisionRecord } from '../../authz/decision-audit.js'
import { loadPolicyEngine } from '../../authz/policy-watch.js'
import { starterPolicies } from '../../cli/init/starter-policies.js'
import type { BackendEnv } from '../../crypto-backend/context.js'
import { errorHandler } from '../../crypto-backend/error-handler.js'
import { PostgresStore } from '../../store/postgres/index.js'
import { application, keyVersion, policyDirWith } from '../helpers/policy-fixtures.js'
import { startPostgresInstance, type PostgresInstance } from '../helpers/postgres-instance.js'

const payments = 'spiffe://hsmgate.demo/app/payments'
const policyDir = policyDirWith(starterPolicies())
let instance: PostgresInstance
let store: PostgresStore
let dir: string
let certificate: string

function logLines(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      callback()
    },
  })
  return { lines, stream }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-unavailable-'))
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '30'])
      .concat(['-subj', '/CN=payments', '-addext', `subjectAltName=URI:${payments}`]),
    { stdio: 'pipe', timeout: 10_000 },
  )
  certificate = encodeURIComponent(readFileSync(join(dir, 'c.pem'), 'utf8'))

  instance = await startPostgresInstance()
  store = await PostgresStore.open({
    url: instance.url(),
    poolSize: 2,
    connectTimeoutMs: 500,
    acquireTimeoutMs: 500,
  })
  await store.putApplication(application('payments'))
  await store.putKeyVersion(keyVersion('payments-signing', 'payments'))
}, 60_000)

afterAll(async () => {
  await store?.close()
  await instance?.cleanup()
  rmSync(dir, { recursive: true, force: true })
  rmSync(policyDir, { recursive: true, force: true })
})

describe('store unavailable', () => {
  it('makes authz deny with 503 and never allow', async () => {
    const { lines, stream } = logLines()
    const audited: DecisionRecord[] = []
    const check = createCheckHandler({
      policies: () => loadPolicyEngine(policyDir),
      directory: store,
      audit: async (record) => {
        audited.push(record)
      },
      decisionSecret: Buffer.alloc(32, 1),
      trustDomain: 'hsmgate.demo',
      logger: pino({ level: 'info' }, stream),
    })
    const http = {
      method: 'POST',
      path: '/v1/keys/payments-signing/sign',
      raw_body: Buffer.from('{}'),
    }
    const request = { attributes: { source: { certificate }, request: { http } } }

    // The same request is allowed while the database runs.
    const allowed = await check(request)
    expect(allowed.ok_response).toBeDefined()

    await instance.stop('fast')
    try {
      const started = performance.now()
      const response = await check(request)
      expect(performance.now() - started).toBeLessThan(1500)
      expect(response.ok_response).toBeUndefined()
      expect(response.denied_response?.status.code).toBe(503)
      const body = JSON.parse(response.denied_response?.body ?? '{}') as { error: { code: string } }
      expect(body.error.code).toBe('store_unavailable')
      expect(audited.at(-1)?.allowed).toBe(false)
      const logged = lines.find((line) => line.store_cause !== undefined)
      expect(logged?.msg).toBe('authorization failed because the store is unavailable')
    } finally {
      await instance.start()
    }
  })

  it('makes the backend respond 503 store_unavailable', async () => {
    const { lines, stream } = logLines()
    const app = new Hono<BackendEnv>()
    app.onError(errorHandler(pino({ level: 'info' }, stream)))
    app.get('/keys/:name', async (c) => c.json(await store.keyVersions(c.req.param('name'))))

    const before = await app.request('/keys/payments-signing')
    expect(before.status).toBe(200)

    await instance.stop('fast')
    try {
      const response = await app.request('/keys/payments-signing')
      expect(response.status).toBe(503)
      const body = (await response.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('store_unavailable')
      expect(body.error.message).not.toContain(instance.url())
      expect(lines.some((line) => line.code === 'store_unavailable')).toBe(true)
    } finally {
      await instance.start()
    }
  })
})
