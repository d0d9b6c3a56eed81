import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { identityFromCertificate } from './identity.js'
import { decodeUtf8String, encodeKeyProtection, KEY_PROTECTION_OID } from './key-protection.js'

let dir: string

function certificate(name: string, extensions: string[]): string {
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    .concat(['-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)])
    .concat(['-days', '1', '-subj', `/CN=${name}`])
  for (const extension of extensions) args.push('-addext', extension)
  execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 })
  return encodeURIComponent(readFileSync(join(dir, `${name}.pem`), 'utf8'))
}

const SAN = 'subjectAltName=URI:spiffe://hsmgate.demo/app/payments,IP:10.0.0.5'

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-keyprot-'))
}, 30_000)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('key protection extension', () => {
  it('reads tpm from the extension and the IP SANs', () => {
    const pem = certificate('tpm', [SAN, `${KEY_PROTECTION_OID}=ASN1:UTF8String:tpm`])
    const identity = identityFromCertificate(pem, 'hsmgate.demo')
    expect(identity.keyProtection).toBe('tpm')
    expect(identity.ipAddresses).toEqual(['10.0.0.5'])
  })

  it('treats an absent extension as software', () => {
    const identity = identityFromCertificate(certificate('plain', [SAN]), 'hsmgate.demo')
    expect(identity.keyProtection).toBe('software')
  })

  it('treats an unknown or wrongly typed value as software', () => {
    const unknown = certificate('odd', [SAN, `${KEY_PROTECTION_OID}=ASN1:UTF8String:TPM2`])
    expect(identityFromCertificate(unknown, 'hsmgate.demo').keyProtection).toBe('software')
    const typed = certificate('typed', [SAN, `${KEY_PROTECTION_OID}=ASN1:IA5STRING:tpm`])
    expect(identityFromCertificate(typed, 'hsmgate.demo').keyProtection).toBe('software')
  })

  it('round-trips the DER encoding and rejects a bad length', () => {
    expect(decodeUtf8String(encodeKeyProtection('tpm'))).toBe('tpm')
    expect(decodeUtf8String(Uint8Array.from([0x0c, 5, 0x74]))).toBeUndefined()
  })
})
