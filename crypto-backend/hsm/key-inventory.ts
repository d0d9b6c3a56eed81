import { createHash } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import type { HsmCluster } from './cluster.js'
import type { ClusterMember } from './cluster-member.js'
import { callSync, toHsmError } from './errors.js'
import * as checks from './input-checks.js'
import { findObjects, readAttributes } from './object-search.js'
import { readPublicKeySpki } from './public-key.js'

/** State of one member's objects under a CKA_ID. */
export interface MemberKeyState {
  member: string
  /** 'unreachable' when the member is failed or its call failed. */
  state: 'present' | 'missing' | 'partial' | 'unreachable'
  /** SHA-256 of the public key's SPKI, or a key check value of a secret key (see checkValue). */
  fingerprint?: string
  error?: string
}

const KEY_CLASSES = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY, pkcs11js.CKO_SECRET_KEY]
/** At most this many objects per class and CKA_ID are destroyed (duplicates included). */
const MAX_OBJECTS = 8

const CHECK_INPUT = Buffer.alloc(16)

/**
 * Returns 8 bytes (hex) that depend only on a secret key's value: an HMAC-SHA-256, an AES-GCM
 * tag or an AES key wrap of a fixed input, whichever the key's usage permits. SoftHSM2 2.6.1
 * leaves CKA_CHECK_VALUE empty on unwrapped keys, so that attribute cannot be compared. The
 * GCM check uses a fixed IV with a fixed plaintext only, which reveals nothing about the key.
 */
function checkValue(member: ClusterMember, session: pkcs11js.Handle, key: pkcs11js.Handle): string {
  const { pkcs11, name } = member
  const [sign, encrypt] = readAttributes(pkcs11, session, name, key, [
    pkcs11js.CKA_SIGN,
    pkcs11js.CKA_ENCRYPT,
  ]).map((value) => value?.[0] === 1)
  const output = Buffer.alloc(64)
  const result = callSync(name, 'key check value', () => {
    if (sign) {
      pkcs11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_HMAC }, key)
      return pkcs11.C_Sign(session, CHECK_INPUT, output)
    }
    if (encrypt) {
      const parameter = {
        type: pkcs11js.CK_PARAMS_AES_GCM_v240,
        iv: Buffer.alloc(12),
        ivBits: 96,
        tagBits: 128,
      }
      pkcs11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter }, key)
      return pkcs11.C_Encrypt(session, CHECK_INPUT, output)
    }
    return wrapFixed(pkcs11, session, key, output)
  })
  return result.subarray(result.length - 8).toString('hex')
}

/** Wraps a fixed 16-byte session object under a wrapping key (CKM_AES_KEY_WRAP_PAD). */
function wrapFixed(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  output: Buffer,
): Buffer {
  const object = pkcs11.C_CreateObject(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_SENSITIVE, value: false },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_VALUE, value: CHECK_INPUT },
  ])
  try {
    return pkcs11.C_WrapKey(
      session,
      { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD },
      key,
      object,
      output,
    )
  } finally {
    pkcs11.C_DestroyObject(session, object)
  }
}

/** Reads what `member` holds under `id`, fresh from the token (no handle cache). */
function inspect(member: ClusterMember, session: pkcs11js.Handle, id: Buffer): MemberKeyState {
  const find = (objectClass: number) =>
    findObjects(member.pkcs11, session, member.name, id, objectClass, 1)[0]
  const [priv, pub, secret] = KEY_CLASSES.map(find)
  if (secret !== undefined) {
    const kcv = checkValue(member, session, secret)
    return { member: member.name, state: 'present', fingerprint: `kcv:${kcv}` }
  }
  if (priv === undefined && pub === undefined) return { member: member.name, state: 'missing' }
  if (priv === undefined || pub === undefined) return { member: member.name, state: 'partial' }
  const spki = readPublicKeySpki(member.pkcs11, session, member.name, pub)
  const digest = createHash('sha256').update(spki).digest('hex')
  return { member: member.name, state: 'present', fingerprint: `spki-sha256:${digest}` }
}

/**
 * Reports, for every member, whether it holds the key with this CKA_ID and its fingerprint, so
 * that members which miss the key or hold a different one can be found. Failed members are
 * tried too, because a check is also how an operator looks at a member that is out.
 */
export async function inspectKey(cluster: HsmCluster, id: Buffer): Promise<MemberKeyState[]> {
  checks.checkId(id)
  const states: MemberKeyState[] = []
  for (const member of cluster.memberList) {
    try {
      states.push(await member.run('inspect key', async (session) => inspect(member, session, id)))
    } catch (error) {
      const message = toHsmError(error, member.name, 'inspect key').message
      states.push({ member: member.name, state: 'unreachable', error: message })
    }
  }
  return states
}

/** Returns the members whose state or fingerprint differs from the most common fingerprint. */
export function divergentMembers(states: MemberKeyState[]): MemberKeyState[] {
  const counts = new Map<string, number>()
  for (const s of states) {
    if (s.fingerprint !== undefined) counts.set(s.fingerprint, (counts.get(s.fingerprint) ?? 0) + 1)
  }
  const expected = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
  return states.filter((s) => s.state !== 'present' || s.fingerprint !== expected)
}

/**
 * Destroys every object with this CKA_ID on every member that answers. Returns the members that
 * could not be reached; their objects remain until the destruction is repeated.
 */
export async function destroyKeyObjects(
  cluster: HsmCluster,
  id: Buffer,
): Promise<{ destroyedOn: string[]; unreachable: string[] }> {
  checks.checkId(id)
  const destroyedOn: string[] = []
  const unreachable: string[] = []
  for (const member of cluster.memberList) {
    for (const objectClass of KEY_CLASSES) member.forgetObject(id, objectClass)
    try {
      await member.run('destroy key', async (session) => {
        for (const objectClass of KEY_CLASSES) {
          const handles = findObjects(
            member.pkcs11,
            session,
            member.name,
            id,
            objectClass,
            MAX_OBJECTS,
          )
          for (const handle of handles) {
            callSync(member.name, 'C_DestroyObject', () =>
              member.pkcs11.C_DestroyObject(session, handle),
            )
          }
        }
      })
      destroyedOn.push(member.name)
    } catch {
      unreachable.push(member.name)
    }
  }
  return { destroyedOn, unreachable }
}
