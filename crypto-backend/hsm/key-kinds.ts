import pkcs11js from 'pkcs11js'
import type { KeyType } from '../../store/index.js'
import type { KeyRef } from './key-templates.js'

/** Mechanism and key type numbers that pkcs11js 2.1.7 does not name (PKCS#11 3.0). */
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055
export const CKM_EDDSA = 0x1057
export const CKK_EC_EDWARDS = 0x40

/** DER of the curve OIDs used as CKA_EC_PARAMS. */
export const EC_PARAMS = {
  'P-256': Buffer.from('06082a8648ce3d030107', 'hex'),
  'P-384': Buffer.from('06052b81040022', 'hex'),
  Ed25519: Buffer.from('06032b6570', 'hex'),
} as const

/** Family of a key type, which decides its templates and mechanisms. */
export type KeyFamily = 'ec' | 'ed25519' | 'rsa' | 'aes' | 'aes-wrap' | 'hmac'

export interface KeyKind {
  family: KeyFamily
  /** RSA modulus bits, or secret key bytes for AES and HMAC keys. */
  size?: number
  ecParams?: Buffer
}

export const KEY_KINDS: Record<KeyType, KeyKind> = {
  'ec-p256': { family: 'ec', ecParams: EC_PARAMS['P-256'] },
  'ec-p384': { family: 'ec', ecParams: EC_PARAMS['P-384'] },
  ed25519: { family: 'ed25519', ecParams: EC_PARAMS.Ed25519 },
  'rsa-2048': { family: 'rsa', size: 2048 },
  'rsa-3072': { family: 'rsa', size: 3072 },
  'rsa-4096': { family: 'rsa', size: 4096 },
  'aes-256': { family: 'aes', size: 32 },
  'aes-256-wrap': { family: 'aes-wrap', size: 32 },
  'hmac-sha256': { family: 'hmac', size: 32 },
  'hmac-sha384': { family: 'hmac', size: 48 },
}

type Template = pkcs11js.Template
const attr = (type: number, value: pkcs11js.Attribute['value']) => ({ type, value })

function identity(ref: KeyRef): Template {
  return [attr(pkcs11js.CKA_ID, ref.id), attr(pkcs11js.CKA_LABEL, ref.label)]
}

/**
 * Returns the attributes of every private or secret key: a sensitive token object. SoftHSM2
 * 2.6.1 wraps only keys with CKA_EXTRACTABLE true (CKR_KEY_UNEXTRACTABLE otherwise, even under a
 * trusted key), so replicated keys are extractable, and CKA_WRAP_WITH_TRUSTED limits wrapping to
 * keys with CKA_TRUSTED, which only the security officer can create. Ed25519 keys cannot be
 * wrapped at all (CKR_KEY_NOT_WRAPPABLE), so they are not extractable.
 */
function protectedKey(ref: KeyRef, extractable: boolean, wrapWithTrusted: boolean): Template {
  const template = [
    attr(pkcs11js.CKA_TOKEN, true),
    attr(pkcs11js.CKA_PRIVATE, true),
    attr(pkcs11js.CKA_SENSITIVE, true),
    attr(pkcs11js.CKA_EXTRACTABLE, extractable),
    ...identity(ref),
  ]
  // NOTE: with wrapWithTrusted false (a cluster KEK provisioned without SO PINs), whoever has the
  // user PIN can wrap these keys under a key of their own and so take the key material out.
  if (extractable) template.push(attr(pkcs11js.CKA_WRAP_WITH_TRUSTED, wrapWithTrusted))
  return template
}

/** Usage flags per family: [sign, verify, encrypt, decrypt, wrap, unwrap, derive]. */
function usage(family: KeyFamily): Template {
  const flags = {
    sign: family !== 'aes' && family !== 'aes-wrap',
    decrypt: family === 'aes' || family === 'rsa',
    wrap: family === 'aes-wrap',
  }
  return [
    attr(pkcs11js.CKA_SIGN, flags.sign),
    attr(pkcs11js.CKA_DECRYPT, flags.decrypt),
    attr(pkcs11js.CKA_DERIVE, false),
    attr(pkcs11js.CKA_UNWRAP, flags.wrap),
  ]
}

/** Template of the private key (asymmetric kinds) for generation, unwrap or import. */
export function privateTemplate(kind: KeyKind, ref: KeyRef, wrapWithTrusted: boolean): Template {
  const keyType = { ec: pkcs11js.CKK_EC, rsa: pkcs11js.CKK_RSA }[kind.family as 'ec' | 'rsa']
  const extractable = kind.family !== 'ed25519'
  return [
    attr(pkcs11js.CKA_CLASS, pkcs11js.CKO_PRIVATE_KEY),
    attr(pkcs11js.CKA_KEY_TYPE, keyType ?? CKK_EC_EDWARDS),
    ...protectedKey(ref, extractable, wrapWithTrusted),
    ...usage(kind.family),
  ]
}

function publicKeyType(kind: KeyKind): number {
  if (kind.family === 'rsa') return pkcs11js.CKK_RSA
  if (kind.family === 'ec') return pkcs11js.CKK_EC
  return CKK_EC_EDWARDS
}

/** Template of the public key for generation; `publicValues` are added when it is imported. */
export function publicTemplate(kind: KeyKind, ref: KeyRef, publicValues: Template = []): Template {
  const rsa = kind.family === 'rsa'
  const template: Template = [
    attr(pkcs11js.CKA_CLASS, pkcs11js.CKO_PUBLIC_KEY),
    attr(pkcs11js.CKA_KEY_TYPE, publicKeyType(kind)),
    attr(pkcs11js.CKA_TOKEN, true),
    attr(pkcs11js.CKA_PRIVATE, false),
    attr(pkcs11js.CKA_VERIFY, true),
    attr(pkcs11js.CKA_ENCRYPT, rsa),
    ...identity(ref),
    ...publicValues,
  ]
  if (kind.ecParams !== undefined) template.push(attr(pkcs11js.CKA_EC_PARAMS, kind.ecParams))
  if (rsa && publicValues.length === 0) {
    template.push(attr(pkcs11js.CKA_MODULUS_BITS, kind.size ?? 0))
    template.push(attr(pkcs11js.CKA_PUBLIC_EXPONENT, Buffer.from([1, 0, 1])))
  }
  return template
}

/** Template of a secret key (AES, AES wrapping, HMAC) for unwrap; `withLength` for generation. */
export function secretTemplate(
  kind: KeyKind,
  ref: KeyRef,
  wrapWithTrusted: boolean,
  withLength = false,
): Template {
  const aes = kind.family !== 'hmac'
  const template: Template = [
    attr(pkcs11js.CKA_CLASS, pkcs11js.CKO_SECRET_KEY),
    attr(pkcs11js.CKA_KEY_TYPE, aes ? pkcs11js.CKK_AES : pkcs11js.CKK_GENERIC_SECRET),
    ...protectedKey(ref, true, wrapWithTrusted),
    ...usage(kind.family),
    attr(pkcs11js.CKA_VERIFY, kind.family === 'hmac'),
    attr(pkcs11js.CKA_ENCRYPT, kind.family === 'aes'),
    attr(pkcs11js.CKA_WRAP, kind.family === 'aes-wrap'),
  ]
  if (withLength) template.push(attr(pkcs11js.CKA_VALUE_LEN, kind.size ?? 0))
  return template
}

/** The CKO class of the object that holds the secret part of a key of this kind. */
export function secretClassOf(kind: KeyKind): number {
  const asymmetric = kind.family === 'ec' || kind.family === 'rsa' || kind.family === 'ed25519'
  return asymmetric ? pkcs11js.CKO_PRIVATE_KEY : pkcs11js.CKO_SECRET_KEY
}
