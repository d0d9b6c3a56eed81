import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { application, keyVersion, policyDirWith } from '../test/helpers/policy-fixtures.js'
import type { Application, SerialSighting } from '../store/store.js'
import { createCheckHandler, type CheckRequest } from './check.js'
import { trustedProxies } from './client-address.js'
import { LISTENER_EXTENSION } from './enroll-listener.js'
import { loadPolicyEngine } from './policy-watch.js'

// The enrollment listener, renewal binding and clone detection in the Check handler.

const ENROLL_PORT = 8444
const policyDir = policyDirWith(starterPolicies())
const engine = loadPolicyEngine(policyDir)
let dir: string
let certificate: string
let certificatePem: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-certchecks-'))
  const san = 'subjectAltName=URI:spiffe://hsmgate.demo/app/payments,DNS:app1,IP:192.0.2.10'
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1'])
      .concat(['-subj', '/CN=payments', '-addext', san]),
    { stdio: 'pipe', timeout: 10_000 },
  )
  certificatePem = readFileSync(join(dir, 'c.pem'), 'utf8')
  certificate = encodeURIComponent(certificatePem)
}, 30_000)

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  rmSync(policyDir, { recursive: true, force: true })
})

function handler(sighting: SerialSighting = 'newest', suspend = false) {
  const apps = new Map<string, Application>([['payments', application('payments')]])
  const alerts: Record<string, unknown>[] = []
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void alerts.push(JSON.parse(line)) },
  )
  const check = createCheckHandler({
    policies: () => engine,
    directory: {
      application: async (name) => apps.get(name),
      keyVersions: async (name) =>
        name.startsWith('payments-') ? [keyVersion(name, 'payments')] : [],
    },
    audit: async () => undefined,
    decisionSecret: randomBytes(32),
    trustDomain: 'hsmgate.demo',
    logger,
    enrollPort: ENROLL_PORT,
    trustedProxies: trustedProxies(['10.0.0.0/8']),
    cloneDetection: {
      suspend,
      ledger: {
        recordSerialSeen: async () => sighting,
        putApplication: async (app) => void apps.set(app.name, app),
        certificatesOf: async () => [],
      },
    },
  })
  return { check, apps, alerts }
}

type Http = NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']

function request(http: Http, options: { enroll?: boolean; port?: number; cert?: boolean } = {}) {
  return {
    attributes: {
      source: {
        certificate: options.cert === false ? '' : certificate,
        address: { socket_address: { address: '192.0.2.10' } },
      },
      destination: {
        address: { socket_address: { address: '127.0.0.1', port_value: options.port ?? 8443 } },
      },
      context_extensions: (options.enroll === true
        ? { [LISTENER_EXTENSION]: 'enroll' }
        : {}) as Record<string, string>,
      request: { http },
    },
  }
}

const enrollBody = { method: 'POST', path: '/v1/enroll', raw_body: Buffer.from('{}') }
const codeOf = (body: string | undefined) =>
  (JSON.parse(body ?? '{}') as { error: { code: string } }).error.code

describe('enrollment listener', () => {
  it('allows POST /v1/enroll without a certificate on the enrollment listener', async () => {
    const { check } = handler()
    const res = await check(request(enrollBody, { enroll: true, port: ENROLL_PORT, cert: false }))
    expect(res.status.code).toBe(0)
    const principal = res.ok_response?.headers.find((h) => h.header.key === 'x-hsmgate-principal')
    expect(principal?.header.value).toBe('spiffe://hsmgate.demo/hsmgate/enrollment')
  })

  it('never treats the main listener as enrollment', async () => {
    const { check } = handler()
    const noCert = await check(request(enrollBody, { cert: false }))
    expect(noCert.denied_response?.status.code).toBe(401)
    const withCert = await check(request(enrollBody))
    expect(codeOf(withCert.denied_response?.body)).toBe('unknown_route')
    // The context extension alone is not enough: the destination port must agree.
    const wrongPort = await check(request(enrollBody, { enroll: true, cert: false }))
    expect(wrongPort.denied_response?.status.code).toBe(401)
  })

  it('reaches nothing but enroll on the enrollment listener', async () => {
    const { check } = handler()
    const options = { enroll: true, port: ENROLL_PORT }
    for (const http of [
      { method: 'GET', path: '/v1/keys' },
      { method: 'POST', path: '/v1/random', raw_body: Buffer.from('{"length":1}') },
      { method: 'POST', path: '/v1/certs/renew' },
      { method: 'GET', path: '/v1/enroll' },
    ]) {
      const res = await check(request(http, options))
      expect(codeOf(res.denied_response?.body), http.path).toBe('unknown_route')
    }
  })
})

describe('renewal binding', () => {
  const renew = (body: object) =>
    request({
      method: 'POST',
      path: '/v1/certs/renew',
      raw_body: Buffer.from(JSON.stringify(body)),
    })
  it('allows a renewal that carries the certificate in use', async () => {
    const res = await handler().check(renew({ certificate: certificatePem, csr: 'x' }))
    expect(res.status.code).toBe(0)
  })
  it('denies a renewal that names another certificate or none', async () => {
    const other = readFileSync(join(dir, 'c.pem'), 'utf8').replace(/A/g, 'B')
    for (const body of [{ csr: 'x' }, { certificate: other, csr: 'x' }]) {
      const res = await handler().check(renew(body))
      expect(codeOf(res.denied_response?.body)).toBe('certificate_mismatch')
    }
  })
})

describe('clone detection', () => {
  const list = () => request({ method: 'GET', path: '/v1/keys' })
  it('denies an older certificate and logs an alert without suspending', async () => {
    const { check, apps, alerts } = handler('older', false)
    const res = await check(list())
    expect(codeOf(res.denied_response?.body)).toBe('certificate_superseded')
    const alert = alerts.find((line) => line.alert === 'certificate_clone')
    expect(alert).toMatchObject({ app: 'payments', host: 'app1', suspended: false })
    expect(apps.get('payments')?.suspended).toBe(false)
  })
  it('suspends the application when configured', async () => {
    const { check, apps } = handler('older', true)
    await check(list())
    expect(apps.get('payments')?.suspended).toBe(true)
  })
  it('lets the newest certificate through', async () => {
    const res = await handler('newest', true).check(list())
    expect(res.status.code).toBe(0)
  })
})
