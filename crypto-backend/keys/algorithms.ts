import { createHash } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { CKM_EDDSA } from '../hsm/key-kinds.js'
import type { KeyType } from '../../store/index.js'

export type Hash = 'sha256' | 'sha384' | 'sha512'

/** A signature algorithm as the API names it and how it maps onto PKCS#11. */
export interface SignAlgorithm {
  name: string
  /** The hash applied to `message`; null for Ed25519, which signs the message itself. */
  hash: Hash | null
  /** Size of r and s in bytes for ECDSA, whose signatures the API encodes as DER by default. */
  ecdsaSize?: number
  mechanism: pkcs11js.Mechanism
  /** Turns the digest (or, for Ed25519, the message) into the input of C_Sign. */
  input(data: Buffer): Buffer
}

const HASH_LENGTH: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 }
const CKM_HASH: Record<Hash, [number, number]> = {
  sha256: [pkcs11js.CKM_SHA256, pkcs11js.CKG_MGF1_SHA256],
  sha384: [pkcs11js.CKM_SHA384, pkcs11js.CKG_MGF1_SHA384],
  sha512: [pkcs11js.CKM_SHA512, pkcs11js.CKG_MGF1_SHA512],
}
/** DER DigestInfo prefixes of RFC 8017 section 9.2, note 1. */
const DIGEST_INFO: Record<Hash, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
}
const HASHES: Hash[] = ['sha256', 'sha384', 'sha512']
const suffix = (hash: Hash) => `SHA_${hash.slice(3)}`

function ecdsa(hash: Hash, size: number): SignAlgorithm {
  const mechanism = { mechanism: pkcs11js.CKM_ECDSA }
  return { name: `ECDSA_${suffix(hash)}`, hash, ecdsaSize: size, mechanism, input: (d) => d }
}

function pss(hash: Hash): SignAlgorithm {
  const [hashAlg, mgf] = CKM_HASH[hash]
  const parameter = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg, mgf, saltLen: HASH_LENGTH[hash] }
  const mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter }
  return { name: `RSASSA_PSS_${suffix(hash)}`, hash, mechanism, input: (d) => d }
}

function pkcs1(hash: Hash): SignAlgorithm {
  const prefix = Buffer.from(DIGEST_INFO[hash], 'hex')
  return {
    name: `RSASSA_PKCS1_V1_5_${suffix(hash)}`,
    hash,
    mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS },
    input: (digest) => Buffer.concat([prefix, digest]),
  }
}

const RSA_SIGN = [...HASHES.map(pss), ...HASHES.map(pkcs1)]
const ED25519: SignAlgorithm = {
  name: 'ED25519',
  hash: null,
  mechanism: { mechanism: CKM_EDDSA },
  input: (message) => message,
}

/** Signature algorithms per key type; the first is the default. */
export const SIGN_ALGORITHMS: Partial<Record<KeyType, SignAlgorithm[]>> = {
  'ec-p256': [ecdsa('sha256', 32)],
  'ec-p384': [ecdsa('sha384', 48)],
  ed25519: [ED25519],
  'rsa-2048': RSA_SIGN,
  'rsa-3072': RSA_SIGN,
  'rsa-4096': RSA_SIGN,
}

/** HMAC algorithms per key type, each with its PKCS#11 mechanism and output length. */
export const MAC_ALGORITHMS: Partial<Record<KeyType, { name: string; mechanism: number }>> = {
  'hmac-sha256': { name: 'HMAC_SHA_256', mechanism: pkcs11js.CKM_SHA256_HMAC },
  'hmac-sha384': { name: 'HMAC_SHA_384', mechanism: pkcs11js.CKM_SHA384_HMAC },
}

/** Encryption algorithms per key type. */
export const ENCRYPT_ALGORITHMS: Partial<Record<KeyType, string>> = {
  'aes-256': 'AES_256_GCM',
  'rsa-2048': 'RSAES_OAEP_SHA_256',
  'rsa-3072': 'RSAES_OAEP_SHA_256',
  'rsa-4096': 'RSAES_OAEP_SHA_256',
}

/** Returns every algorithm a key of this type supports, as GET /v1/keys lists them. */
export function algorithmsOf(type: KeyType): string[] {
  const names = (SIGN_ALGORITHMS[type] ?? []).map((algorithm) => algorithm.name)
  const encrypt = ENCRYPT_ALGORITHMS[type]
  if (encrypt !== undefined) names.push(encrypt)
  const mac = MAC_ALGORITHMS[type]
  if (mac !== undefined) names.push(mac.name)
  if (type === 'aes-256-wrap') names.push('AES_KEY_WRAP_PAD')
  return names
}

/** Returns the digest length of `hash` in bytes. */
export function hashLength(hash: Hash): number {
  return HASH_LENGTH[hash]
}

export function digest(hash: Hash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest()
}
