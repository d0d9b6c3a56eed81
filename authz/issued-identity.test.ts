import { execFileSync } from 'node:child_process'
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { normalizeSerial } from '../store/certificate-serial.js'
import { SqliteStore } from '../store/sqlite-store.js'
import type { KeyProtection } from '../store/store.js'
import { application, policyDirWith } from '../test/helpers/policy-fixtures.js'
import { DualControl } from './approval-rules.js'
import { createCheckHandler, type CheckRequest } from './check.js'
import { KEY_PROTECTION_OID } from './key-protection.js'
import { loadPolicyEngine } from './policy-watch.js'

// Person principals and the 'tpm' key protection count only for certificates that hsmgate
// issued. Two CAs made with openssl play hsmgate's issuing CA and another CA of the trust bundle.
// The certificates table records only what the first one issued.

const DOMAIN = 'hsmgate.demo'
const policyDir = policyDirWith({
  ...starterPolicies(),
  'tpm.cedar':
    '@id("tpm-only")\n@reason("a TPM-protected key is required")\n' +
    'forbid (principal is Hsmgate::Application, action, resource)\n' +
    'unless { context.certificate.keyProtection == "tpm" };\n',
})
const engine = loadPolicyEngine(policyDir)
let dir: string
let store: SqliteStore

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 })
}

function makeCa(name: string): void {
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)])
      .concat(['-days', '1', '-subj', `/CN=${name}`]),
  )
}

/** Issues a leaf from `ca` and returns its PEM. */
function issue(ca: string, leaf: string, uri: string, protection?: KeyProtection): string {
  const ext = join(dir, `${leaf}.ext`)
  const lines = [`subjectAltName=URI:${uri},IP:127.0.0.1`]
  if (protection !== undefined) lines.push(`${KEY_PROTECTION_OID}=ASN1:UTF8String:${protection}`)
  writeFileSync(ext, `${lines.join('\n')}\n`)
  openssl(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, `${leaf}.key`), '-out', join(dir, `${leaf}.csr`)])
      .concat(['-subj', `/CN=${leaf}`]),
  )
  openssl(
    ['x509', '-req', '-in', join(dir, `${leaf}.csr`), '-CA', join(dir, `${ca}.crt`)]
      .concat(['-CAkey', join(dir, `${ca}.key`), '-CAcreateserial', '-days', '1'])
      .concat(['-extfile', ext, '-out', join(dir, `${leaf}.crt`)]),
  )
  return readFileSync(join(dir, `${leaf}.crt`), 'utf8')
}

/** Records a certificate in the store as hsmgate records what it issues. */
async function record(pem: string, app: string, keyProtection: KeyProtection): Promise<void> {
  const certificate = new X509Certificate(pem)
  await store.putCertificate({
    serial: normalizeSerial(certificate.serialNumber),
    app,
    host: '',
    addresses: [],
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
    keyProtection,
    status: 'active',
    revokedAt: null,
    revocationReason: null,
    issuedAt: new Date().toISOString(),
  })
}

let aliceIssued: string
let aliceForeign: string
let tpmIssued: string
let tpmForeign: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-issued-'))
  store = new SqliteStore(join(dir, 'store.db'))
  await store.putApplication(application('payments'))
  makeCa('hsmgate-ca')
  makeCa('other-ca')
  aliceIssued = issue('hsmgate-ca', 'alice', `spiffe://${DOMAIN}/person/alice`)
  await record(aliceIssued, 'person:alice', 'software')
  aliceForeign = issue('other-ca', 'alice-other', `spiffe://${DOMAIN}/person/alice`)
  tpmIssued = issue('hsmgate-ca', 'pay-tpm', `spiffe://${DOMAIN}/app/payments`, 'tpm')
  await record(tpmIssued, 'payments', 'tpm')
  tpmForeign = issue('other-ca', 'pay-other', `spiffe://${DOMAIN}/app/payments`, 'tpm')
}, 60_000)

afterAll(async () => {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  rmSync(policyDir, { recursive: true, force: true })
})

const check = () =>
  createCheckHandler({
    policies: () => engine,
    directory: store,
    revocations: store,
    audit: async () => undefined,
    decisionSecret: randomBytes(32),
    trustDomain: DOMAIN,
    logger: pino({ level: 'silent' }),
    controls: {
      state: store.controls,
      alerter: { raise: () => undefined, idle: async () => undefined },
      suspend: async (app) => store.putApplication(app),
      dualControl: new DualControl({
        groups: { custodians: ['alice', 'bob'] },
        rules: [],
        max_ttl: '1h',
      }),
    },
  })

function request(pem: string, method: string, path: string): CheckRequest {
  return {
    attributes: {
      source: {
        certificate: encodeURIComponent(pem),
        address: { socket_address: { address: '127.0.0.1' } },
      },
      request: { http: { method, path } },
    },
  } as CheckRequest
}

const statusOf = (res: Awaited<ReturnType<ReturnType<typeof check>>>) =>
  res.denied_response === undefined ? 'allowed' : res.denied_response.status.code

describe('person principal', () => {
  it('is accepted from a certificate hsmgate issued', async () => {
    const res = await check()(request(aliceIssued, 'GET', '/v1/approvals'))
    expect(statusOf(res)).toBe('allowed')
  })

  it('is rejected from another CA of the trust bundle', async () => {
    const res = await check()(request(aliceForeign, 'GET', '/v1/approvals'))
    expect(statusOf(res)).toBe(401)
  })

  it('is rejected for a recorded serial with another validity', async () => {
    // A second CA that copies the serial of alice's certificate but not its exact validity.
    const copy = new X509Certificate(aliceIssued)
    const serial = normalizeSerial(copy.serialNumber)
    openssl(
      ['x509', '-req', '-in', join(dir, 'alice-other.csr'), '-CA', join(dir, 'other-ca.crt')]
        .concat(['-CAkey', join(dir, 'other-ca.key'), '-set_serial', `0x${serial}`])
        .concat(['-days', '2', '-extfile', join(dir, 'alice-other.ext')])
        .concat(['-out', join(dir, 'alice-copy.crt')]),
    )
    const pem = readFileSync(join(dir, 'alice-copy.crt'), 'utf8')
    expect(normalizeSerial(new X509Certificate(pem).serialNumber)).toBe(serial)
    const res = await check()(request(pem, 'GET', '/v1/approvals'))
    expect(statusOf(res)).toBe(401)
  })
})

describe('tpm key protection', () => {
  it('counts when hsmgate issued the certificate so', async () => {
    const res = await check()(request(tpmIssued, 'GET', '/v1/keys'))
    expect(statusOf(res)).toBe('allowed')
  })

  it('counts as software from another CA', async () => {
    const res = await check()(request(tpmForeign, 'GET', '/v1/keys'))
    expect(statusOf(res)).toBe(403)
    expect(res.denied_response?.body).toContain('a TPM-protected key is required')
  })
})
