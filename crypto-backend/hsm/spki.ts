import { createPublicKey } from 'node:crypto'
import { P256_EC_PARAMS } from './key-templates.js'

/** Length of an uncompressed P-256 point: 0x04, then X and Y of 32 bytes each. */
const P256_POINT_LENGTH = 65
const COORDINATE_LENGTH = 32

/**
 * Returns the uncompressed point inside CKA_EC_POINT. PKCS#11 defines the attribute as a DER
 * OCTET STRING around the point, and SoftHSM2 2.6.1 returns 04 41 04 X Y. Some modules return
 * the bare point, which is accepted too.
 */
export function uncompressedPoint(ecPoint: Buffer): Buffer {
  if (ecPoint.length === P256_POINT_LENGTH && ecPoint[0] === 0x04) return ecPoint
  const isOctetString = ecPoint[0] === 0x04 && ecPoint[1] === P256_POINT_LENGTH
  const point = ecPoint.subarray(2)
  if (!isOctetString || point.length !== P256_POINT_LENGTH || point[0] !== 0x04) {
    throw new Error(
      `CKA_EC_POINT is not an uncompressed P-256 point (${ecPoint.length} bytes, starts with ` +
        `${ecPoint.subarray(0, 3).toString('hex')})`,
    )
  }
  return point
}

/** Returns the SubjectPublicKeyInfo DER of a P-256 key from its CKA_EC_PARAMS and CKA_EC_POINT. */
export function p256Spki(ecParams: Buffer, ecPoint: Buffer): Buffer {
  if (!ecParams.equals(P256_EC_PARAMS)) {
    throw new Error(`CKA_EC_PARAMS ${ecParams.toString('hex')} is not the P-256 curve OID`)
  }
  const point = uncompressedPoint(ecPoint)
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: point.subarray(1, 1 + COORDINATE_LENGTH).toString('base64url'),
    y: point.subarray(1 + COORDINATE_LENGTH).toString('base64url'),
  }
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' })
}
