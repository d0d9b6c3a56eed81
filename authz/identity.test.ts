import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdentityError, identityFromCertificate, uriSubjectAltNames } from './identity.js'

const trustDomain = 'hsmgate.demo'
let dir: string

/**
 * Creates a self-signed P-256 certificate with the openssl CLI and returns its PEM. `san` is an
 * openssl subjectAltName value, such as 'URI:spiffe://hsmgate.demo/app/a'.
 */
function makeCertificate(name: string, san: string | undefined, altSection?: string): string {
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  args.push('-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`))
  args.push('-days', '1', '-subj', `/CN=${name}`)
  if (san !== undefined) {
    args.push('-addext', `subjectAltName=${san}`)
  }
  if (altSection !== undefined) {
    // A config section keeps a comma inside one SAN value, which -addext would split.
    const config = join(dir, `${name}.cnf`)
    writeFileSync(
      config,
      `[req]\ndistinguished_name = dn\n[dn]\n[ext]\nsubjectAltName = @alt\n[alt]\n${altSection}\n`,
    )
    args.push('-config', config, '-extensions', 'ext')
  }
  execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 })
  return readFileSync(join(dir, `${name}.pem`), 'utf8')
}

/** Encodes a PEM the way Envoy fills attributes.source.certificate. */
function envoyEncode(pem: string): string {
  return encodeURIComponent(pem)
}

function identityErrorCode(encoded: string, nowMs?: number): string | undefined {
  try {
    identityFromCertificate(encoded, trustDomain, nowMs)
    return undefined
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError)
    return (error as IdentityError).code
  }
}

const certificates: Record<string, string> = {}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-identity-'))
  certificates.valid = makeCertificate('valid', 'URI:spiffe://hsmgate.demo/app/payments')
  certificates.withDns = makeCertificate(
    'with-dns',
    'DNS:payments.example, URI:spiffe://hsmgate.demo/app/payments, email:ops@example.com',
  )
  certificates.none = makeCertificate('none', undefined)
  certificates.dnsOnly = makeCertificate('dns-only', 'DNS:payments.example')
  certificates.two = makeCertificate(
    'two',
    'URI:spiffe://hsmgate.demo/app/payments,URI:spiffe://hsmgate.demo/app/reporting',
  )
  certificates.otherDomain = makeCertificate('other', 'URI:spiffe://evil.example/app/payments')
  certificates.prefixDomain = makeCertificate(
    'prefix',
    'URI:spiffe://hsmgate.demo.evil.example/app/payments',
  )
  certificates.https = makeCertificate('https', 'URI:https://hsmgate.demo/app/payments')
  certificates.noPath = makeCertificate('no-path', 'URI:spiffe://hsmgate.demo')
  certificates.dotDot = makeCertificate('dot-dot', 'URI:spiffe://hsmgate.demo/app/../admin')
  // One URI SAN whose value contains ",URI:", which a split on ", " would read as two names.
  certificates.embeddedComma = makeCertificate(
    'embedded-comma',
    undefined,
    'URI.1 = spiffe://hsmgate.demo/app/a,URI:spiffe://hsmgate.demo/app/payments',
  )
}, 60_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('identityFromCertificate', () => {
  it('returns the URI SAN of a URL-encoded PEM', () => {
    const identity = identityFromCertificate(envoyEncode(certificates.valid!), trustDomain)
    expect(identity.principal).toBe('spiffe://hsmgate.demo/app/payments')
    expect(identity.trustDomain).toBe(trustDomain)
    expect(identity.issuer).toBe('CN=valid')
    expect(identity.serialNumber).toMatch(/^[0-9a-f]+$/)
    expect(identity.notBefore.getTime()).toBeLessThanOrEqual(Date.now())
    expect(identity.notAfter.getTime()).toBeGreaterThan(Date.now())
    expect(identity.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  })

  it('accepts a PEM that is not URL-encoded', () => {
    const identity = identityFromCertificate(certificates.valid!, trustDomain)
    expect(identity.principal).toBe('spiffe://hsmgate.demo/app/payments')
  })

  it('ignores DNS and email SANs next to the URI', () => {
    const identity = identityFromCertificate(envoyEncode(certificates.withDns!), trustDomain)
    expect(identity.principal).toBe('spiffe://hsmgate.demo/app/payments')
  })

  it('rejects an empty certificate field', () => {
    expect(identityErrorCode('')).toBe('certificate_missing')
  })

  it('rejects text that is not a certificate', () => {
    expect(identityErrorCode(envoyEncode('-----BEGIN CERTIFICATE-----\nAAAA\n'))).toBe(
      'certificate_invalid',
    )
  })

  it('rejects a broken percent-encoding', () => {
    expect(identityErrorCode('%E0%A4%A')).toBe('certificate_invalid')
  })

  it('rejects a certificate without SANs', () => {
    expect(identityErrorCode(envoyEncode(certificates.none!))).toBe('uri_san_missing')
  })

  it('rejects a certificate with only a DNS SAN', () => {
    expect(identityErrorCode(envoyEncode(certificates.dnsOnly!))).toBe('uri_san_missing')
  })

  it('rejects two URI SANs', () => {
    expect(identityErrorCode(envoyEncode(certificates.two!))).toBe('uri_san_multiple')
  })

  it('rejects another trust domain', () => {
    expect(identityErrorCode(envoyEncode(certificates.otherDomain!))).toBe('trust_domain_mismatch')
  })

  it('rejects a trust domain that only starts with ours', () => {
    expect(identityErrorCode(envoyEncode(certificates.prefixDomain!))).toBe('trust_domain_mismatch')
  })

  it('rejects a URI that is not a SPIFFE ID', () => {
    expect(identityErrorCode(envoyEncode(certificates.https!))).toBe('spiffe_id_invalid')
  })

  it('rejects a SPIFFE ID without a path', () => {
    expect(identityErrorCode(envoyEncode(certificates.noPath!))).toBe('spiffe_id_invalid')
  })

  it('rejects a SPIFFE ID with a dot-dot segment', () => {
    expect(identityErrorCode(envoyEncode(certificates.dotDot!))).toBe('spiffe_id_invalid')
  })

  it('keeps a quoted SAN with a comma whole', () => {
    expect(identityErrorCode(envoyEncode(certificates.embeddedComma!))).toBe('spiffe_id_invalid')
  })

  it('rejects a certificate after notAfter', () => {
    const later = Date.now() + 3 * 24 * 3600 * 1000
    expect(identityErrorCode(envoyEncode(certificates.valid!), later)).toBe('certificate_expired')
  })

  it('rejects a certificate before notBefore', () => {
    const earlier = Date.now() - 24 * 3600 * 1000
    expect(identityErrorCode(envoyEncode(certificates.valid!), earlier)).toBe('certificate_expired')
  })

  it('names the foreign SPIFFE ID in the error', () => {
    try {
      identityFromCertificate(envoyEncode(certificates.otherDomain!), trustDomain)
      expect.unreachable()
    } catch (error) {
      expect((error as Error).message).toContain('spiffe://evil.example/app/payments')
    }
  })
})

describe('uriSubjectAltNames', () => {
  it('returns nothing for an absent extension', () => {
    expect(uriSubjectAltNames(undefined)).toEqual([])
  })

  it('splits plain entries', () => {
    expect(uriSubjectAltNames('DNS:a.example, URI:spiffe://d/x, URI:spiffe://d/y')).toEqual([
      'spiffe://d/x',
      'spiffe://d/y',
    ])
  })

  it('decodes JSON-quoted values containing commas', () => {
    expect(uriSubjectAltNames('URI:"spiffe://d/x, URI:spiffe://d/y", DNS:a')).toEqual([
      'spiffe://d/x, URI:spiffe://d/y',
    ])
  })

  it('rejects an unterminated quoted value', () => {
    expect(() => uriSubjectAltNames('URI:"spiffe://d/x')).toThrow(IdentityError)
  })

  it('rejects an entry without a type', () => {
    expect(() => uriSubjectAltNames('spiffe')).toThrow(IdentityError)
  })
})
