import pkcs11js from 'pkcs11js'
import { callAsync } from './errors.js'
import type { ReplicatedKeySpec } from './key-replication.js'
import {
  aesGenerateTemplate,
  aesTemplate,
  ecPrivateTemplate,
  ecPublicImportTemplate,
  ecPublicTemplate,
  type KeyRef,
} from './key-templates.js'
import { readAttributes } from './object-search.js'

/** Describes an EC P-256 key pair for CKM_ECDSA, made with C_GenerateKeyPair (CKM_EC_KEY_PAIR_GEN). */
export function ecP256Spec(ref: KeyRef): ReplicatedKeySpec {
  return {
    description: 'EC P-256 key pair',
    ref,
    secretClass: pkcs11js.CKO_PRIVATE_KEY,
    async generate(member, session, wrapWithTrusted) {
      const keys = await callAsync(member.name, 'C_GenerateKeyPair', () =>
        member.pkcs11.C_GenerateKeyPairAsync(
          session,
          { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
          ecPublicTemplate(ref),
          ecPrivateTemplate(ref, wrapWithTrusted),
        ),
      )
      member.rememberObject(ref.id, pkcs11js.CKO_PRIVATE_KEY, keys.privateKey)
      member.rememberObject(ref.id, pkcs11js.CKO_PUBLIC_KEY, keys.publicKey)
      const [ecPoint] = readAttributes(member.pkcs11, session, member.name, keys.publicKey, [
        pkcs11js.CKA_EC_POINT,
      ])
      return { secret: keys.privateKey, public: keys.publicKey, ecPoint }
    },
    unwrapTemplate: (wrapWithTrusted) => ecPrivateTemplate(ref, wrapWithTrusted),
    publicImportTemplate: (ecPoint) => ecPublicImportTemplate(ref, ecPoint),
  }
}

/** Describes an AES key for CKM_AES_GCM, made with C_GenerateKey (CKM_AES_KEY_GEN). */
export function aesSpec(ref: KeyRef, bits: number): ReplicatedKeySpec {
  return {
    description: `AES-${bits} key`,
    ref,
    secretClass: pkcs11js.CKO_SECRET_KEY,
    async generate(member, session, wrapWithTrusted) {
      const key = await callAsync(member.name, 'C_GenerateKey', () =>
        member.pkcs11.C_GenerateKeyAsync(
          session,
          { mechanism: pkcs11js.CKM_AES_KEY_GEN },
          aesGenerateTemplate(ref, bits, wrapWithTrusted),
        ),
      )
      member.rememberObject(ref.id, pkcs11js.CKO_SECRET_KEY, key)
      return { secret: key }
    },
    unwrapTemplate: (wrapWithTrusted) => aesTemplate(ref, wrapWithTrusted),
  }
}
