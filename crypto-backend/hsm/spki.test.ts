import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { P256_EC_PARAMS } from './key-templates.js'
import { p256Spki, uncompressedPoint } from './spki.js'

function nodeKey(): { spki: Buffer; point: Buffer } {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const point = Buffer.concat([
    Buffer.from([0x04]),
    Buffer.from(jwk.x ?? '', 'base64url'),
    Buffer.from(jwk.y ?? '', 'base64url'),
  ])
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), point }
}

describe('p256Spki', () => {
  it('builds the SPKI from a DER OCTET STRING point', () => {
    const { spki, point } = nodeKey()
    const ecPoint = Buffer.concat([Buffer.from([0x04, 0x41]), point])
    expect(p256Spki(P256_EC_PARAMS, ecPoint).equals(spki)).toBe(true)
  })

  it('accepts a bare uncompressed point', () => {
    const { spki, point } = nodeKey()
    expect(p256Spki(P256_EC_PARAMS, point).equals(spki)).toBe(true)
  })

  it('rejects other curves and malformed points', () => {
    const { point } = nodeKey()
    const p384 = Buffer.from('06052b81040022', 'hex')
    expect(() => p256Spki(p384, point)).toThrow('not the P-256 curve OID')
    expect(() => uncompressedPoint(point.subarray(0, 40))).toThrow(
      'not an uncompressed P-256 point',
    )
  })
})
