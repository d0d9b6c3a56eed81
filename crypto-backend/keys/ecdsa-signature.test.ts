import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { derToRaw, rawToDer } from './ecdsa-signature.js'

describe('ecdsa signature encoding', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })

  it('converts raw signatures to DER that node:crypto verifies', () => {
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(`message ${i}`)
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      expect(verify('sha256', data, publicKey, rawToDer(raw))).toBe(true)
    }
  })

  it('converts DER back to the same raw signature', () => {
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(`message ${i}`)
      const der = sign('sha256', data, privateKey)
      const raw = derToRaw(der, 32)
      expect(raw).toBeDefined()
      expect(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw!)).toBe(true)
      expect(rawToDer(raw!).equals(der)).toBe(true)
    }
  })

  it('rejects malformed DER', () => {
    const der = sign('sha256', Buffer.from('x'), privateKey)
    expect(derToRaw(Buffer.alloc(0), 32)).toBeUndefined()
    expect(derToRaw(der.subarray(0, der.length - 1), 32)).toBeUndefined()
    expect(derToRaw(Buffer.concat([der, Buffer.from([0])]), 32)).toBeUndefined()
    expect(derToRaw(Buffer.from([0x31, ...der.subarray(1)]), 32)).toBeUndefined()
    expect(derToRaw(Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01]), 32)).toBeUndefined()
    expect(
      derToRaw(Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]), 32),
    ).toHaveLength(64)
  })

  it('rejects integers wider than the curve', () => {
    const wide = Buffer.concat([
      Buffer.from([0x30, 0x26, 0x02, 0x21, 0x01]),
      Buffer.alloc(32, 1),
      Buffer.from([0x02, 0x01, 0x01]),
    ])
    expect(derToRaw(wide, 32)).toBeUndefined()
  })
})
