import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiError } from '../../api-error.js'
import { loadManufacturerCas, verifyEkCertificate } from './ek-certificate.js'

// Certificates made with the openssl command line: a root, an intermediate and EK certificates.

let dir: string
const file = (name: string) => join(dir, name)

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir })
}

function issue(name: string, ca: string, extensions: string, days = '30'): Buffer {
  writeFileSync(file(`${name}.ext`), extensions)
  openssl([
    ...['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`],
    ...['-keyout', `${name}.key`, '-out', `${name}.csr`],
  ])
  openssl([
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`],
    ...['-days', days, '-set_serial', '5', '-extfile', `${name}.ext`, '-out', `${name}.pem`],
  ])
  return openssl(['x509', '-in', `${name}.pem`, '-outform', 'der'])
}

const EK_EXT = 'extendedKeyUsage = 2.23.133.8.1\nbasicConstraints = critical,CA:FALSE\n'
let ek: Buffer
let cas: X509Certificate[]

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-ek-cert-'))
  openssl([
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=root', '-days', '30'],
    ...['-keyout', 'root.key', '-out', 'root.pem'],
  ])
  issue('intermediate', 'root', 'basicConstraints = critical,CA:TRUE\n')
  ek = issue('ek', 'intermediate', EK_EXT)
  writeFileSync(
    file('bundle.pem'),
    readFileSync(file('root.pem')) + readFileSync(file('intermediate.pem'), 'utf8'),
  )
  cas = loadManufacturerCas(file('bundle.pem'), 'pki.tpm_manufacturer_cas')
}, 60_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function code(run: () => unknown): string {
  try {
    run()
    return 'accepted'
  } catch (error) {
    if (error instanceof ApiError) return error.code
    throw error
  }
}

describe('EK certificate check', () => {
  it('accepts a chain through an intermediate', () => {
    expect(verifyEkCertificate(ek, cas).fingerprint).toMatch(/^[0-9a-f]{64}$/)
  })

  it('rejects a chain without its root', () => {
    const intermediateOnly = cas.filter((ca) => ca.subject.includes('intermediate'))
    expect(code(() => verifyEkCertificate(ek, intermediateOnly))).toBe('ek_certificate_untrusted')
  })

  it('rejects an expired EK certificate', () => {
    const later = new Date(Date.now() + 60 * 86_400_000)
    expect(code(() => verifyEkCertificate(ek, cas, later))).toBe('ek_certificate_untrusted')
  })

  it('rejects a CA or a wrong usage as EK', () => {
    const intermediate = openssl(['x509', '-in', 'intermediate.pem', '-outform', 'der'])
    expect(code(() => verifyEkCertificate(intermediate, cas))).toBe('ek_certificate_invalid')
    const tls = issue('tls', 'intermediate', 'extendedKeyUsage = serverAuth\n')
    expect(code(() => verifyEkCertificate(tls, cas))).toBe('ek_certificate_invalid')
  })

  it('rejects bytes that are no certificate', () => {
    expect(code(() => verifyEkCertificate(Buffer.from('30820000', 'hex'), cas))).toBe(
      'ek_certificate_invalid',
    )
  })
})

describe('manufacturer CA bundle', () => {
  it('names the key and file of a bad bundle', () => {
    writeFileSync(file('empty.pem'), 'nothing here\n')
    expect(() => loadManufacturerCas(file('empty.pem'), 'pki.tpm_manufacturer_cas')).toThrow(
      /pki\.tpm_manufacturer_cas: .*empty\.pem contains no PEM certificate/,
    )
    expect(() => loadManufacturerCas(file('missing.pem'), 'pki.tpm_manufacturer_cas')).toThrow(
      /cannot read/,
    )
    expect(() => loadManufacturerCas(file('ek.pem'), 'pki.tpm_manufacturer_cas')).toThrow(
      /is not a CA certificate/,
    )
  })
})
