import { generateKeyPairSync } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import type { ClusterMember } from './cluster-member.js'
import { callAsync, callSync } from './errors.js'
import {
  privateTemplate,
  publicTemplate,
  secretClassOf,
  secretTemplate,
  type KeyKind,
} from './key-kinds.js'
import type { KeyObjects, ReplicatedKeySpec } from './key-replication.js'
import type { KeyRef } from './key-templates.js'
import { readAttributes } from './object-search.js'

/** Returns the public attributes that a member copies from the source to create the same public key. */
function publicValueTypes(kind: KeyKind): number[] {
  return kind.family === 'rsa'
    ? [pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT]
    : [pkcs11js.CKA_EC_POINT]
}

const GENERATE_MECHANISM: Record<string, number> = {
  ec: pkcs11js.CKM_EC_KEY_PAIR_GEN,
  rsa: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN,
  aes: pkcs11js.CKM_AES_KEY_GEN,
  'aes-wrap': pkcs11js.CKM_AES_KEY_GEN,
  hmac: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN,
}

/** Describes how a key of `kind` is generated on one member and copied to the others. */
export function keySpec(kind: KeyKind, ref: KeyRef, description: string): ReplicatedKeySpec {
  if (kind.family === 'ed25519') return ed25519Spec(kind, ref, description)
  const asymmetric = kind.family === 'ec' || kind.family === 'rsa'
  return {
    description,
    ref,
    secretClass: secretClassOf(kind),
    generate: (member, session, wrapWithTrusted) =>
      asymmetric
        ? generatePair(member, session, kind, ref, wrapWithTrusted)
        : generateSecret(member, session, kind, ref, wrapWithTrusted),
    unwrapTemplate: (wrapWithTrusted) =>
      asymmetric
        ? privateTemplate(kind, ref, wrapWithTrusted)
        : secretTemplate(kind, ref, wrapWithTrusted),
    publicImportTemplate: asymmetric ? (values) => publicTemplate(kind, ref, values) : undefined,
  }
}

async function generatePair(
  member: ClusterMember,
  session: pkcs11js.Handle,
  kind: KeyKind,
  ref: KeyRef,
  wrapWithTrusted: boolean,
): Promise<KeyObjects> {
  const mechanism = { mechanism: GENERATE_MECHANISM[kind.family] ?? 0 }
  const keys = await callAsync(member.name, 'C_GenerateKeyPair', () =>
    member.pkcs11.C_GenerateKeyPairAsync(
      session,
      mechanism,
      publicTemplate(kind, ref),
      privateTemplate(kind, ref, wrapWithTrusted),
    ),
  )
  return remember(member, session, kind, ref, keys.privateKey, keys.publicKey)
}

async function generateSecret(
  member: ClusterMember,
  session: pkcs11js.Handle,
  kind: KeyKind,
  ref: KeyRef,
  wrapWithTrusted: boolean,
): Promise<KeyObjects> {
  const key = await callAsync(member.name, 'C_GenerateKey', () =>
    member.pkcs11.C_GenerateKeyAsync(
      session,
      { mechanism: GENERATE_MECHANISM[kind.family] ?? 0 },
      secretTemplate(kind, ref, wrapWithTrusted, true),
    ),
  )
  member.rememberObject(ref.id, pkcs11js.CKO_SECRET_KEY, key)
  return { secret: key }
}

function remember(
  member: ClusterMember,
  session: pkcs11js.Handle,
  kind: KeyKind,
  ref: KeyRef,
  privateKey: pkcs11js.Handle,
  publicKey: pkcs11js.Handle,
): KeyObjects {
  member.rememberObject(ref.id, pkcs11js.CKO_PRIVATE_KEY, privateKey)
  member.rememberObject(ref.id, pkcs11js.CKO_PUBLIC_KEY, publicKey)
  const types = publicValueTypes(kind)
  const values = readAttributes(member.pkcs11, session, member.name, publicKey, types)
  const publicValues = types.map((type, i) => ({ type, value: values[i] ?? Buffer.alloc(0) }))
  return { secret: privateKey, public: publicKey, publicValues }
}

/**
 * Ed25519 keys: SoftHSM2 2.6.1 generates them (CKM_EC_EDWARDS_KEY_PAIR_GEN) but refuses to wrap
 * them (CKR_KEY_NOT_WRAPPABLE), so they cannot be copied under the cluster KEK. The key is
 * therefore generated in process memory and imported into every member with C_CreateObject; the
 * seed is overwritten as soon as every member holds the key.
 */
function ed25519Spec(kind: KeyKind, ref: KeyRef, description: string): ReplicatedKeySpec {
  // NOTE: the private key exists in this process's memory for the duration of the import, as
  // the cluster KEK does during provisioning. Vendor HSMs clone such keys inside the device.
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  const seed = Buffer.from(jwk.d ?? '', 'base64url')
  const point = Buffer.concat([Buffer.from([0x04, 0x20]), Buffer.from(jwk.x ?? '', 'base64url')])
  const publicValues = [{ type: pkcs11js.CKA_EC_POINT, value: point }]
  const create = (member: ClusterMember, session: pkcs11js.Handle): KeyObjects => {
    const priv = callSync(member.name, 'C_CreateObject', () =>
      member.pkcs11.C_CreateObject(session, [
        ...privateTemplate(kind, ref, false),
        { type: pkcs11js.CKA_EC_PARAMS, value: kind.ecParams ?? Buffer.alloc(0) },
        { type: pkcs11js.CKA_VALUE, value: seed },
      ]),
    )
    const pub = callSync(member.name, 'C_CreateObject', () =>
      member.pkcs11.C_CreateObject(session, publicTemplate(kind, ref, publicValues)),
    )
    member.rememberObject(ref.id, pkcs11js.CKO_PRIVATE_KEY, priv)
    member.rememberObject(ref.id, pkcs11js.CKO_PUBLIC_KEY, pub)
    return { secret: priv, public: pub, publicValues }
  }
  return {
    description,
    ref,
    secretClass: pkcs11js.CKO_PRIVATE_KEY,
    generate: async (member, session) => create(member, session),
    unwrapTemplate: () => [],
    importOnTarget: async (member, session) => create(member, session),
    dispose: () => seed.fill(0),
  }
}
