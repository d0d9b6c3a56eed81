import { createPublicKey, type JsonWebKey } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { callSync } from './errors.js'
import { CKK_EC_EDWARDS, EC_PARAMS } from './key-kinds.js'

/** Coordinate length per named curve. */
const CURVES: Array<{ crv: 'P-256' | 'P-384'; params: Buffer; size: number }> = [
  { crv: 'P-256', params: EC_PARAMS['P-256'], size: 32 },
  { crv: 'P-384', params: EC_PARAMS['P-384'], size: 48 },
]

/**
 * Returns the bare point inside CKA_EC_POINT: PKCS#11 defines it as a DER OCTET STRING around
 * the point (SoftHSM2 2.6.1 returns that form); a bare point of the expected length is accepted.
 */
function bareOctets(ecPoint: Buffer, length: number): Buffer {
  if (ecPoint.length === length) return ecPoint
  const short = ecPoint[0] === 0x04 && ecPoint[1] === length && ecPoint.length === length + 2
  const long = ecPoint[0] === 0x04 && ecPoint[1] === 0x81 && ecPoint[2] === length
  if (short) return ecPoint.subarray(2)
  if (long && ecPoint.length === length + 3) return ecPoint.subarray(3)
  throw new Error(`CKA_EC_POINT of ${ecPoint.length} bytes does not hold a ${length}-byte point`)
}

function b64url(data: Buffer): string {
  return data.toString('base64url')
}

/** Builds a JWK from the attributes of a public key object. */
function jwkOf(keyType: number, attrs: Map<number, Buffer>): JsonWebKey {
  if (keyType === pkcs11js.CKK_RSA) {
    const n = attrs.get(pkcs11js.CKA_MODULUS) ?? Buffer.alloc(0)
    const e = attrs.get(pkcs11js.CKA_PUBLIC_EXPONENT) ?? Buffer.alloc(0)
    return { kty: 'RSA', n: b64url(n), e: b64url(e) }
  }
  const params = attrs.get(pkcs11js.CKA_EC_PARAMS) ?? Buffer.alloc(0)
  const point = attrs.get(pkcs11js.CKA_EC_POINT) ?? Buffer.alloc(0)
  if (keyType === CKK_EC_EDWARDS) {
    return { kty: 'OKP', crv: 'Ed25519', x: b64url(bareOctets(point, 32)) }
  }
  const curve = CURVES.find((c) => c.params.equals(params))
  if (curve === undefined) throw new Error(`unsupported CKA_EC_PARAMS ${params.toString('hex')}`)
  const raw = bareOctets(point, 1 + 2 * curve.size)
  if (raw[0] !== 0x04) throw new Error('CKA_EC_POINT is not an uncompressed point')
  return {
    kty: 'EC',
    crv: curve.crv,
    x: b64url(raw.subarray(1, 1 + curve.size)),
    y: b64url(raw.subarray(1 + curve.size)),
  }
}

/** Reads a public key object and returns its SubjectPublicKeyInfo DER. */
export function readPublicKeySpki(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  member: string,
  handle: pkcs11js.Handle,
): Buffer {
  const [typeAttr] = callSync(member, 'C_GetAttributeValue', () =>
    pkcs11.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_KEY_TYPE }]),
  )
  const keyType = (typeAttr?.value as Buffer).readUInt32LE(0)
  const types =
    keyType === pkcs11js.CKK_RSA
      ? [pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT]
      : [pkcs11js.CKA_EC_PARAMS, pkcs11js.CKA_EC_POINT]
  const values = callSync(member, 'C_GetAttributeValue', () =>
    pkcs11.C_GetAttributeValue(
      session,
      handle,
      types.map((type) => ({ type })),
    ),
  )
  const attrs = new Map(types.map((type, i) => [type, values[i]?.value as Buffer]))
  const jwk = jwkOf(keyType, attrs)
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' })
}
