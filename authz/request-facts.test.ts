import { describe, expect, it } from 'vitest'
import { application } from '../test/helpers/policy-fixtures.js'
import { bodyFacts, contextFacts, sourceMatchesHost } from './request-facts.js'
import type { PeerIdentity } from './identity.js'

const identity: PeerIdentity = {
  principal: 'spiffe://hsmgate.demo/app/payments',
  trustDomain: 'hsmgate.demo',
  serialNumber: '0A',
  issuer: 'CN=demo CA',
  subject: 'CN=payments',
  notBefore: new Date('2026-03-01T00:00:00Z'),
  notAfter: new Date('2026-03-02T00:00:00Z'),
  fingerprint256: 'AA',
  ipAddresses: ['192.0.2.10'],
  dnsNames: [],
  keyProtection: 'tpm',
}

describe('contextFacts', () => {
  it('derives certificate lifetime, age and UTC time', () => {
    const facts = contextFacts({
      identity,
      application: application('payments'),
      sourceAddress: '192.0.2.10',
      body: Buffer.from('{"algorithm":"AES_256_GCM","context":{"app":"payments"}}'),
      nowMs: Date.parse('2026-03-01T21:30:00Z'),
    })
    expect(facts).toMatchObject({
      sourceMatchesHost: true,
      certificate: { lifetimeSeconds: 86400, ageSeconds: 77400, keyProtection: 'tpm' },
      time: { hour: 21, minute: 30, weekday: 'Sunday' },
      algorithm: 'AES_256_GCM',
      encryptionContext: { app: 'payments' },
      approvalGranted: false,
    })
  })
})

describe('sourceMatchesHost', () => {
  const app = application('payments', { addresses: ['10.0.0.5', '2001:db8::1'] })
  it('matches registered addresses and certificate IP SANs in canonical form', () => {
    expect(sourceMatchesHost('10.0.0.5', app, [])).toBe(true)
    expect(sourceMatchesHost('::ffff:10.0.0.5', app, [])).toBe(true)
    expect(sourceMatchesHost('2001:0db8:0:0::1', app, [])).toBe(true)
    expect(sourceMatchesHost('192.0.2.10', app, ['192.0.2.10'])).toBe(true)
  })
  it('binds a certificate with IP SANs to those addresses only', () => {
    expect(sourceMatchesHost('10.0.0.5', app, ['192.0.2.10'])).toBe(false)
    expect(sourceMatchesHost('::ffff:192.0.2.10', app, ['192.0.2.10'])).toBe(true)
  })
  it('never matches an empty, foreign or malformed address', () => {
    expect(sourceMatchesHost('', app, [])).toBe(false)
    expect(sourceMatchesHost('10.0.0.6', app, [])).toBe(false)
    expect(sourceMatchesHost('10.0.0.5 evil', app, [])).toBe(false)
    expect(sourceMatchesHost('localhost', application('x', { addresses: ['localhost'] }), [])).toBe(
      false,
    )
  })
})

describe('bodyFacts', () => {
  it('reads nothing from a body that is not a JSON object', () => {
    expect(bodyFacts(Buffer.from('{"algorithm":'))).toEqual({ encryptionContext: null })
    expect(bodyFacts(Buffer.from([0xff, 0xfe]))).toEqual({ encryptionContext: null })
    expect(bodyFacts(Buffer.from('[1]'))).toEqual({ encryptionContext: null })
  })
  it('drops a context with a non-string value and keeps __proto__ as an entry', () => {
    expect(bodyFacts(Buffer.from('{"context":{"a":1}}')).encryptionContext).toBeNull()
    const facts = bodyFacts(Buffer.from('{"context":{"__proto__":"x"}}'))
    expect(Object.entries(facts.encryptionContext ?? {})).toEqual([['__proto__', 'x']])
  })
})
