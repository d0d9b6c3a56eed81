import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCheckHandler, newDecisionId, type CheckRequest } from './check.js'
import { verifyDecision } from './decision-header.js'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { application, keyVersion, policyDirWith } from '../test/helpers/policy-fixtures.js'
import type { DecisionRecord } from './decision-audit.js'
import { loadPolicyEngine } from './policy-watch.js'

const payments = 'spiffe://hsmgate.demo/app/payments'
const policyDir = policyDirWith(starterPolicies())
const engine = loadPolicyEngine(policyDir)
const directory = {
  application: async (name: string) => (name === 'payments' ? application('payments') : undefined),
  keyVersions: async (name: string) =>
    name.startsWith('payments-') ? [keyVersion(name, 'payments')] : [],
}
const secret = randomBytes(32)
let dir: string
let certificate: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-check-'))
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '30'])
      .concat(['-subj', '/CN=payments', '-addext', `subjectAltName=URI:${payments}`]),
    { stdio: 'pipe', timeout: 10_000 },
  )
  certificate = encodeURIComponent(readFileSync(join(dir, 'c.pem'), 'utf8'))
}, 30_000)

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  rmSync(policyDir, { recursive: true, force: true })
})

function handler(options: { throwOnPolicies?: boolean; failAudit?: boolean } = {}) {
  const lines: Record<string, unknown>[] = []
  const audited: DecisionRecord[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      callback()
    },
  })
  const check = createCheckHandler({
    policies: () => {
      if (options.throwOnPolicies === true) {
        throw new Error('policies unavailable')
      }
      return engine
    },
    directory,
    audit: async (record) => {
      if (options.failAudit === true) throw new Error('disk full')
      audited.push(record)
    },
    decisionSecret: secret,
    trustDomain: 'hsmgate.demo',
    logger: pino({ level: 'info' }, stream),
    now: () => Date.now(),
  })
  return { check, lines, audited }
}

function request(http: NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']) {
  return { attributes: { source: { certificate }, request: { http } } }
}

function deniedBody(body: string | undefined): { code: string; message: string } {
  return (JSON.parse(body ?? '{}') as { error: { code: string; message: string } }).error
}

describe('createCheckHandler', () => {
  it('signs the raw body into the decision header', async () => {
    const { check } = handler()
    const body = Buffer.from([0, 1, 2, 255])
    const path = '/v1/keys/payments-signing/sign'
    const response = await check(request({ method: 'POST', path, raw_body: body }))
    const header = response.ok_response?.headers.find((h) => h.header.key === 'x-hsmgate-decision')
    const verified = verifyDecision(
      secret,
      header?.header.value,
      { principal: payments, method: 'POST', path, body },
      Date.now(),
      5_000,
    )
    expect(verified.ok).toBe(true)
  })

  it('uses the empty body when raw_body is absent', async () => {
    const { check } = handler()
    const response = await check(request({ method: 'POST', path: '/v1/random' }))
    const header = response.ok_response?.headers.find((h) => h.header.key === 'x-hsmgate-decision')
    const verified = verifyDecision(
      secret,
      header?.header.value,
      { principal: payments, method: 'POST', path: '/v1/random', body: new Uint8Array() },
      Date.now(),
      5_000,
    )
    expect(verified.ok).toBe(true)
  })

  it('stamps the decision with the injected clock', async () => {
    // One minute ahead keeps the clock inside the test certificate's validity period.
    const injected = Date.now() + 60_000
    const check = createCheckHandler({
      policies: () => engine,
      directory,
      audit: async () => undefined,
      decisionSecret: secret,
      trustDomain: 'hsmgate.demo',
      logger: pino({ level: 'silent' }),
      now: () => injected,
    })
    const response = await check(request({ method: 'POST', path: '/v1/random' }))
    const header = response.ok_response?.headers[1]?.header.value ?? ''
    expect(header.split('.')[1]).toBe(String(injected))
  })

  it('removes reserved headers sent through header_map', async () => {
    const { check } = handler()
    const response = await check(
      request({
        method: 'POST',
        path: '/v1/random',
        header_map: {
          headers: [
            { key: 'x-hsmgate-extra', raw_value: Buffer.from('1') },
            { key: 'x-hsmgate-principal', raw_value: Buffer.from('spiffe://hsmgate.demo/x') },
            { key: 'accept', raw_value: Buffer.from('*/*') },
          ],
        },
      }),
    )
    expect(response.ok_response?.headers_to_remove).toEqual(['x-hsmgate-extra'])
  })

  it('denies with 503 when policy evaluation throws', async () => {
    const { check, lines } = handler({ throwOnPolicies: true })
    const response = await check(request({ method: 'POST', path: '/v1/random' }))
    expect(response.status.code).toBe(7)
    expect(response.ok_response).toBeUndefined()
    expect(response.denied_response?.status.code).toBe(503)
    expect(deniedBody(response.denied_response?.body).code).toBe('authz_error')
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1)
  })

  it('denies with 503 when Envoy sends the body as a string', async () => {
    const { check } = handler()
    const response = await check(request({ method: 'POST', path: '/v1/random', body: '{"n":16}' }))
    expect(response.denied_response?.status.code).toBe(503)
    expect(deniedBody(response.denied_response?.body).code).toBe('authz_error')
  })

  it('denies a partial body with 413', async () => {
    const { check } = handler()
    const response = await check(
      request({
        method: 'POST',
        path: '/v1/keys/payments-a/sign',
        headers: { 'x-envoy-auth-partial-body': 'true' },
        raw_body: Buffer.from('abc'),
      }),
    )
    expect(response.denied_response?.status.code).toBe(413)
    expect(deniedBody(response.denied_response?.body).code).toBe('body_too_large')
  })

  it('denies with 503 and audit_unavailable when the audit write fails', async () => {
    const { check, lines } = handler({ failAudit: true })
    const response = await check(request({ method: 'POST', path: '/v1/random' }))
    expect(response.ok_response).toBeUndefined()
    expect(response.denied_response?.status.code).toBe(503)
    expect(deniedBody(response.denied_response?.body).code).toBe('audit_unavailable')
    expect(lines.some((l) => l.msg === 'audit write failed; request denied')).toBe(true)
  })

  it('audits an allow with its policy ids before answering', async () => {
    const { check, audited } = handler()
    const response = await check(request({ method: 'POST', path: '/v1/keys/payments-a/sign' }))
    const id = response.ok_response?.headers[2]?.header.value
    expect(audited).toEqual([
      expect.objectContaining({ decisionId: id, allowed: true, policyIds: ['own-keys'] }),
    ])
  })

  it('denies an unknown key with 404 key_not_found', async () => {
    const { check, audited } = handler()
    const response = await check(request({ method: 'POST', path: '/v1/keys/other-key/sign' }))
    expect(response.denied_response?.status.code).toBe(404)
    expect(deniedBody(response.denied_response?.body).code).toBe('key_not_found')
    expect(audited[0]).toMatchObject({ allowed: false, reason: 'key_not_found' })
  })

  it('judges create-key on a new name as a key the caller would own', async () => {
    const { check, audited } = handler()
    const body = Buffer.from('{"type":"aes-256","tags":["team-a"]}')
    const response = await check(
      request({ method: 'POST', path: '/v1/keys/payments-new/create', raw_body: body }),
    )
    expect(response.ok_response).toBeDefined()
    expect(audited[0]).toMatchObject({
      allowed: true,
      policyIds: ['own-keys'],
      key: 'payments-new',
    })
  })

  it('denies create-key outside the caller namespace', async () => {
    const { check, audited } = handler()
    for (const name of ['new-key', 'reporting-new']) {
      const response = await check(
        request({ method: 'POST', path: `/v1/keys/${name}/create`, raw_body: Buffer.from('{}') }),
      )
      expect(response.denied_response?.status.code, name).toBe(403)
    }
    expect(audited[0]).toMatchObject({ allowed: false, policyIds: ['key-namespace'] })
  })

  it('denies create-key on a name another application already owns', async () => {
    const other = { ...directory, keyVersions: async () => [keyVersion('taken', 'reporting')] }
    const response = await createCheckHandler({
      policies: () => engine,
      directory: other,
      audit: async () => undefined,
      decisionSecret: secret,
      trustDomain: 'hsmgate.demo',
      logger: pino({ level: 'silent' }),
    })(request({ method: 'POST', path: '/v1/keys/taken/create' }))
    expect(response.denied_response?.status.code).toBe(403)
  })

  it('denies a request without attributes with 401', async () => {
    const { check } = handler()
    const response = await check({})
    expect(response.denied_response?.status.code).toBe(401)
  })
})

describe('newDecisionId', () => {
  it('returns d_ and 22 base64url characters', async () => {
    expect(newDecisionId()).toMatch(/^d_[A-Za-z0-9_-]{22}$/)
  })

  it('returns different ids', async () => {
    expect(newDecisionId()).not.toBe(newDecisionId())
  })
})
