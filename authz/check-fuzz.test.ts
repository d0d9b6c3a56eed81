import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { application, keyVersion, policyDirWith } from '../test/helpers/policy-fixtures.js'
import { createCheckHandler, type CheckRequest } from './check.js'
import type { DecisionRecord } from './decision-audit.js'
import { loadPolicyEngine } from './policy-watch.js'

/** Cases per property; each run stays well under 30 seconds. */
const CASES = 3000
const policyDir = policyDirWith(starterPolicies())
const engine = loadPolicyEngine(policyDir)
let dir: string
let validPem: string

/** Deterministic generator (mulberry32) so a failure can be replayed from its seed. */
function generator(seed: number) {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))
  return { int, pick, bytes }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-fuzz-'))
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2'])
      .concat([
        '-subj',
        '/CN=payments',
        '-addext',
        'subjectAltName=URI:spiffe://hsmgate.demo/app/payments',
      ]),
    { stdio: 'pipe', timeout: 10_000 },
  )
  validPem = readFileSync(join(dir, 'c.pem'), 'utf8')
}, 30_000)

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  rmSync(policyDir, { recursive: true, force: true })
})

function handler() {
  const audited: DecisionRecord[] = []
  const check = createCheckHandler({
    policies: () => engine,
    directory: {
      application: async (name) => (name === 'payments' ? application('payments') : undefined),
      keyVersions: async (name) =>
        name === 'payments-signing' ? [keyVersion(name, 'payments')] : [],
    },
    audit: async (record) => void audited.push(record),
    decisionSecret: randomBytes(32),
    trustDomain: 'hsmgate.demo',
    logger: pino({ level: 'silent' }),
  })
  return { check, audited }
}

/** Certificates that must never authenticate. */
function badCertificate(g: ReturnType<typeof generator>): string | undefined {
  const pem = validPem
  const body = pem.split('\n').slice(1, -2).join('')
  return g.pick([
    () => undefined,
    () => '',
    () => encodeURIComponent('-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n'),
    () => g.bytes(1 + g.int(300)).toString('latin1'),
    () => encodeURIComponent(pem.slice(0, g.int(pem.length))),
    () => encodeURIComponent(pem.replace(body.slice(40, 48), 'AAAAAAAA')),
    () => '%E0%A4%A'.repeat(1 + g.int(50)),
    () => 'A'.repeat(70_000),
  ])()
}

const PATHS = [
  '/v1/keys',
  '/v1/random',
  '/v1/health',
  '/v1/keys/payments-signing/sign',
  '/v1/keys/x/../payments-signing/sign',
  '/v1//keys',
  '/v1/keys/%70ayments-signing/sign',
  '',
]
const METHODS = ['GET', 'POST', 'get', 'DELETE', '', 'PATCH']

function junkHttp(g: ReturnType<typeof generator>) {
  const header = () =>
    g.pick([
      () => ({ key: 'x-big', value: 'v'.repeat(g.int(200_000)) }),
      () => ({ key: 'x-raw', raw_value: g.bytes(1 + g.int(64)) }),
      () => ({ key: 'X-Envoy-Auth-Partial-Body', value: 'true' }),
      () => ({ key: 'x-hsmgate-principal', value: 'spiffe://hsmgate.demo/app/admin' }),
      () => ({ key: g.bytes(8).toString('latin1'), value: '' }),
    ])()
  return {
    method: g.pick(METHODS),
    path: g.pick(PATHS),
    header_map: { headers: Array.from({ length: g.int(6) }, header) },
    raw_body: g.pick([
      undefined,
      new Uint8Array(),
      g.bytes(g.int(512)),
      Buffer.from('{"message":'),
    ]),
  }
}

function expectDeny(
  response: Awaited<ReturnType<ReturnType<typeof handler>['check']>>,
  status?: number,
) {
  expect(response.ok_response).toBeUndefined()
  expect(response.status.code).toBe(7)
  const body = JSON.parse(response.denied_response?.body ?? '') as { error: Record<string, string> }
  expect(body.error.code).toMatch(/^[a-z_]+$/)
  expect(body.error.decision_id).toMatch(/^d_/)
  if (status !== undefined) expect(response.denied_response?.status.code).toBe(status)
}

describe('malformed CheckRequests', () => {
  it('denies every request without a valid certificate with 401 and audits it', async () => {
    const g = generator(1)
    const { check, audited } = handler()
    for (let i = 0; i < CASES; i++) {
      const certificate = badCertificate(g)
      const request: CheckRequest = {
        attributes: {
          source: certificate === undefined ? null : { certificate },
          request: { http: junkHttp(g) },
        },
      }
      expectDeny(await check(request), 401)
    }
    expect(audited).toHaveLength(CASES)
    expect(audited.every((r) => !r.allowed && r.reason.length > 0)).toBe(true)
  }, 30_000)

  it('denies a truncated body whichever header form marks it', async () => {
    const g = generator(2)
    const { check } = handler()
    const certificate = encodeURIComponent(validPem)
    for (let i = 0; i < 200; i++) {
      const http = {
        method: 'POST',
        path: '/v1/keys/payments-signing/sign',
        headers: { 'x-envoy-auth-partial-body': g.pick(['false', 'TRUE', 'true']) },
        header_map: { headers: [{ key: 'X-Envoy-Auth-Partial-Body', value: 'true' }] },
        raw_body: g.bytes(g.int(64)),
      }
      expectDeny(await check({ attributes: { source: { certificate }, request: { http } } }), 413)
    }
  })

  it('allows a valid certificate only on routes the policies permit', async () => {
    const g = generator(3)
    const { check } = handler()
    const certificate = encodeURIComponent(validPem)
    const permitted = new Set([
      'GET /v1/keys',
      'POST /v1/random',
      'POST /v1/keys/payments-signing/sign',
    ])
    for (let i = 0; i < CASES; i++) {
      const http = junkHttp(g)
      const response = await check({ attributes: { source: { certificate }, request: { http } } })
      const partial = http.header_map.headers.some((h) => 'value' in h && h.value === 'true')
      if (response.ok_response !== undefined) {
        expect(permitted.has(`${http.method} ${http.path}`)).toBe(true)
        expect(partial).toBe(false)
      } else {
        expectDeny(response)
      }
    }
  }, 30_000)

  it('survives malformed attribute shapes', async () => {
    const { check } = handler()
    const shapes: unknown[] = [
      {},
      { attributes: null },
      { attributes: { source: { address: null } } },
      { attributes: { source: { certificate: 42 } } },
      { attributes: { request: { http: { method: 7, path: {} } } } },
    ]
    for (const shape of shapes) expectDeny(await check(shape as CheckRequest))
  })
})
