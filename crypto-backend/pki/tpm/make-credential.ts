import {
  constants,
  createCipheriv,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { kdfa, kdfe } from './tpm-kdf.js'
import { TpmFormatError } from './tpm-reader.js'

/**
 * The EK templates this gateway encrypts to: the TCG default low-range templates L-1 (RSA 2048)
 * and L-2 (ECC NIST P-256), both with nameAlg SHA-256 and AES-128-CFB as the symmetric algorithm.
 */
const EK_NAME_HASH = 'sha256'
const EK_DIGEST_BYTES = 32
const EK_SYMMETRIC_BITS = 128

/** Output of TPM2_MakeCredential, each part marshalled with its size as the TPM expects it. */
export interface MadeCredential {
  /** TPM2B_ID_OBJECT: the integrity HMAC and the encrypted credential. */
  readonly credentialBlob: Buffer
  /** TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK. */
  readonly encryptedSecret: Buffer
}

/**
 * Performs TPM2_MakeCredential in software: protects `credential` so that only the TPM that
 * holds the private part of `ekPublicKey`, with the object named `objectName` loaded, returns it
 * from TPM2_ActivateCredential. Accepts an RSA 2048 or ECC P-256 EK with the default templates.
 * Throws TpmFormatError for another key type or a credential longer than 32 bytes.
 */
export function makeCredential(
  ekPublicKey: KeyObject,
  objectName: Buffer,
  credential: Buffer,
): MadeCredential {
  if (credential.length === 0 || credential.length > EK_DIGEST_BYTES) {
    throw new TpmFormatError(`the credential is ${credential.length} bytes; use 1 to 32`)
  }
  const { seed, encryptedSecret } = protectSeed(ekPublicKey)
  const symmetricKey = kdfa(EK_NAME_HASH, seed, 'STORAGE', objectName, empty, EK_SYMMETRIC_BITS)
  const hmacKey = kdfa(EK_NAME_HASH, seed, 'INTEGRITY', empty, empty, EK_DIGEST_BYTES * 8)

  // The credential travels as a TPM2B_DIGEST, encrypted in CFB mode with a zero IV.
  const cipher = createCipheriv('aes-128-cfb', symmetricKey, Buffer.alloc(16))
  const encIdentity = Buffer.concat([cipher.update(sized(credential)), cipher.final()])
  const integrity = createHmac(EK_NAME_HASH, hmacKey)
    .update(encIdentity)
    .update(objectName)
    .digest()
  return {
    credentialBlob: sized(Buffer.concat([sized(integrity), encIdentity])),
    encryptedSecret: sized(encryptedSecret),
  }
}

const empty = Buffer.alloc(0)

/** Creates a random seed and the TPMU_ENCRYPTED_SECRET that carries it to the EK. */
function protectSeed(ekPublicKey: KeyObject): { seed: Buffer; encryptedSecret: Buffer } {
  const type = ekPublicKey.asymmetricKeyType
  const details = ekPublicKey.asymmetricKeyDetails ?? {}
  if (type === 'rsa' && details.modulusLength === 2048) return rsaSeed(ekPublicKey)
  if (type === 'ec' && details.namedCurve === 'prime256v1') return eccSeed(ekPublicKey)
  const described = type === 'ec' ? `EC ${details.namedCurve}` : `${type} ${details.modulusLength}`
  throw new TpmFormatError(
    `the EK public key is ${described}; the gateway supports the RSA 2048 and ECC P-256 EKs ` +
      'of the TCG default templates',
  )
}

/** RSA EK: a random seed encrypted with RSA-OAEP, SHA-256 and the label "IDENTITY\0". */
function rsaSeed(ekPublicKey: KeyObject): { seed: Buffer; encryptedSecret: Buffer } {
  const seed = randomBytes(EK_DIGEST_BYTES)
  const encryptedSecret = publicEncrypt(
    {
      key: ekPublicKey,
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: EK_NAME_HASH,
      oaepLabel: Buffer.from('IDENTITY\0', 'ascii'),
    },
    seed,
  )
  return { seed, encryptedSecret }
}

/**
 * ECC EK: one-pass ECDH with an ephemeral P-256 key. The seed is KDFe of the shared x
 * coordinate, and the encrypted secret is the ephemeral public point as a TPMS_ECC_POINT.
 */
function eccSeed(ekPublicKey: KeyObject): { seed: Buffer; encryptedSecret: Buffer } {
  const ephemeral = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const z = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: ekPublicKey })
  const point = ephemeral.publicKey.export({ format: 'jwk' })
  const ekPoint = ekPublicKey.export({ format: 'jwk' })
  const x = Buffer.from(point.x ?? '', 'base64url')
  const y = Buffer.from(point.y ?? '', 'base64url')
  const ekX = Buffer.from(ekPoint.x ?? '', 'base64url')
  const seed = kdfe(EK_NAME_HASH, z, 'IDENTITY', x, ekX, EK_DIGEST_BYTES * 8)
  return { seed, encryptedSecret: Buffer.concat([sized(x), sized(y)]) }
}

/** Marshals a TPM2B: a 16-bit big-endian size, then the bytes. */
function sized(bytes: Buffer): Buffer {
  const size = Buffer.alloc(2)
  size.writeUInt16BE(bytes.length)
  return Buffer.concat([size, bytes])
}
