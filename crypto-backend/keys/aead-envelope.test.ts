import { describe, expect, it } from 'vitest'
import { ApiError } from '../api-error.js'
import { additionalData, decodeEnvelope, encodeEnvelope, parseContext } from './aead-envelope.js'

describe('aead envelope', () => {
  it('round-trips version, IV and sealed bytes', () => {
    const envelope = { version: 7, iv: Buffer.alloc(12, 3), sealed: Buffer.alloc(40, 9) }
    const decoded = decodeEnvelope(encodeEnvelope(envelope))
    expect(decoded.version).toBe(7)
    expect(decoded.iv.equals(envelope.iv)).toBe(true)
    expect(decoded.sealed.equals(envelope.sealed)).toBe(true)
  })

  it('rejects short, foreign and future-format input', () => {
    const good = encodeEnvelope({ version: 1, iv: Buffer.alloc(12), sealed: Buffer.alloc(16) })
    const future = Buffer.from(good)
    future[2] = 2
    for (const bad of [
      Buffer.alloc(10),
      Buffer.concat([Buffer.from('XX'), good.subarray(2)]),
      future,
    ]) {
      expect(() => decodeEnvelope(bad)).toThrow(ApiError)
    }
  })

  it('binds the context independent of key order', () => {
    const a = additionalData('k', 1, { tenant: 'acme', purpose: 'x' })
    const b = additionalData('k', 1, { purpose: 'x', tenant: 'acme' })
    expect(a.equals(b)).toBe(true)
    expect(a.equals(additionalData('k', 2, { tenant: 'acme', purpose: 'x' }))).toBe(false)
    expect(a.equals(additionalData('other', 1, { tenant: 'acme', purpose: 'x' }))).toBe(false)
  })

  it('validates the context field', () => {
    expect(parseContext(undefined)).toEqual({})
    expect(() => parseContext('tenant=acme')).toThrow(/JSON object/)
    expect(() => parseContext({ tenant: 5 })).toThrow(/context.tenant/)
    expect(() => parseContext([])).toThrow(/JSON object/)
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v']))
    expect(() => parseContext(many)).toThrow(/at most 32/)
  })
})
