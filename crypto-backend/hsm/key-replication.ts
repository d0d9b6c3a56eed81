import pkcs11js from 'pkcs11js'
import type { Logger } from '../../log/logger.js'
import type { ClusterMember } from './cluster-member.js'
import { HsmError, callSync } from './errors.js'
import { unwrapKey, wrapKey } from './key-transfer.js'
import { KEK_ID, KEK_LABEL, type KeyRef } from './key-templates.js'
import { destroyQuietly, readAttributes } from './object-search.js'

/** The objects of one generated key on one member. */
export interface KeyObjects {
  secret: pkcs11js.Handle
  public?: pkcs11js.Handle
  /** Public attributes (CKA_EC_POINT, or modulus and exponent) read on the source. */
  publicValues?: pkcs11js.Template
}

/** The key-type-specific steps of generation and replication. */
export interface ReplicatedKeySpec {
  description: string
  ref: KeyRef
  /** CKO class of the object that is wrapped: CKO_PRIVATE_KEY or CKO_SECRET_KEY. */
  secretClass: number
  generate(
    member: ClusterMember,
    session: pkcs11js.Handle,
    wrapWithTrusted: boolean,
  ): Promise<KeyObjects>
  unwrapTemplate(wrapWithTrusted: boolean): pkcs11js.Template
  /** Template of the public key object that a target creates from the source's values. */
  publicImportTemplate?(publicValues: pkcs11js.Template): pkcs11js.Template
  /** Creates the key on a target directly, for keys that cannot be wrapped (Ed25519). */
  importOnTarget?(member: ClusterMember, session: pkcs11js.Handle): Promise<KeyObjects>
  /** Overwrites key material that the spec holds in memory; called when replication ends. */
  dispose?(): void
}

const KEY_CLASSES = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY, pkcs11js.CKO_SECRET_KEY]

interface Placement {
  member: ClusterMember
  kek?: pkcs11js.Handle
  kekTrusted?: boolean
  objects?: KeyObjects
}

type SourcePlacement = Placement & { objects: KeyObjects }

/**
 * Generates a key on the first healthy member and copies it to every other healthy member under
 * the same CKA_ID and label: C_WrapKey with CKM_AES_KEY_WRAP_PAD under the cluster KEK on the
 * source, C_UnwrapKey on each target. A target with a member fault is marked failed and skipped;
 * any other failure destroys the objects created so far on every member and throws. Returns the
 * source member and its objects.
 */
export async function generateReplicated(
  members: ClusterMember[],
  spec: ReplicatedKeySpec,
  logger: Logger,
): Promise<SourcePlacement> {
  const placements = await prepare(members, spec)
  const [source, ...targets] = placements
  if (source === undefined)
    throw new HsmError('hsm_unavailable', `${spec.description}: no healthy HSM member`)
  // Without a KEK (a one-member cluster) keys still get CKA_WRAP_WITH_TRUSTED, so that they can
  // leave the HSM only under an SO-created key if members are added later.
  const wrapWithTrusted = source.kekTrusted ?? true
  try {
    const objects = await source.member.run(`generate ${spec.description}`, (session) =>
      spec.generate(source.member, session, wrapWithTrusted),
    )
    const generated: SourcePlacement = { ...source, objects }
    placements[0] = generated
    try {
      await replicate(generated, targets, spec, wrapWithTrusted, logger)
    } catch (error) {
      await rollback(placements, spec)
      throw error
    }
    return generated
  } finally {
    spec.dispose?.()
  }
}

/** Checks on each healthy member that the CKA_ID is unused and the cluster KEK exists. */
async function prepare(members: ClusterMember[], spec: ReplicatedKeySpec): Promise<Placement[]> {
  const healthy = members.filter((member) => member.healthy)
  const needsKek = healthy.length > 1
  const placements: Placement[] = []
  for (const member of healthy) {
    try {
      placements.push(
        await member.run('check key id', async (session) =>
          checkMember(member, session, spec, needsKek),
        ),
      )
    } catch (error) {
      if (error instanceof HsmError && error.memberFault) continue
      throw error
    }
  }
  return placements
}

function checkMember(
  member: ClusterMember,
  session: pkcs11js.Handle,
  spec: ReplicatedKeySpec,
  needsKek: boolean,
): Placement {
  const idHex = spec.ref.id.toString('hex')
  for (const objectClass of KEY_CLASSES) {
    if (member.findObject(session, spec.ref.id, objectClass) !== undefined) {
      throw new HsmError(
        'hsm_operation_failed',
        `member '${member.name}': a key with CKA_ID ${idHex} already exists; generate under a new CKA_ID`,
        { member: member.name },
      )
    }
  }
  if (!needsKek) return { member }
  const kek = member.findObject(session, KEK_ID, pkcs11js.CKO_SECRET_KEY)
  if (kek === undefined) {
    throw new HsmError(
      'hsm_key_not_found',
      `member '${member.name}': cluster key-encryption key '${KEK_LABEL}' not found, so keys ` +
        'cannot be replicated; run provisionClusterKek (hsmgate init) before generating keys',
      { member: member.name },
    )
  }
  const [trusted] = readAttributes(member.pkcs11, session, member.name, kek, [pkcs11js.CKA_TRUSTED])
  return { member, kek, kekTrusted: trusted?.[0] === 1 }
}

async function replicate(
  source: SourcePlacement,
  targets: Placement[],
  spec: ReplicatedKeySpec,
  wrapWithTrusted: boolean,
  logger: Logger,
): Promise<void> {
  if (targets.length === 0) return
  const { member, kek, objects } = source
  if (kek === undefined) throw new Error('cluster KEK handle missing on the source member')
  const importOnTarget = spec.importOnTarget
  const wrapped =
    importOnTarget === undefined
      ? await member.run(`wrap ${spec.description}`, (session) =>
          wrapKey(member, session, kek, objects.secret),
        )
      : Buffer.alloc(0)
  try {
    for (const target of targets) {
      try {
        target.objects = await target.member.run(`replicate ${spec.description}`, (session) =>
          importOnTarget !== undefined
            ? importOnTarget(target.member, session)
            : placeOnTarget(source.objects, target, session, wrapped, spec, wrapWithTrusted),
        )
      } catch (error) {
        if (!(error instanceof HsmError) || !error.memberFault) throw error
        logger.warn(
          { member: target.member.name, key_id: spec.ref.id.toString('hex'), err: error.message },
          'key not replicated to a failed member; operations with it skip that member',
        )
      }
    }
  } finally {
    wrapped.fill(0)
  }
}

/**
 * Creates the key on a target: C_UnwrapKey for the private or secret key, C_CreateObject for the
 * public key. If the public key cannot be created, the unwrapped key is destroyed again.
 */
async function placeOnTarget(
  sourceObjects: KeyObjects,
  target: Placement,
  session: pkcs11js.Handle,
  wrapped: Buffer,
  spec: ReplicatedKeySpec,
  wrapWithTrusted: boolean,
): Promise<KeyObjects> {
  const { member, kek } = target
  if (kek === undefined) throw new Error(`cluster KEK handle missing on member '${member.name}'`)
  const template = spec.unwrapTemplate(wrapWithTrusted)
  const secret = await unwrapKey(member, session, kek, wrapped, template)
  const { publicValues } = sourceObjects
  let publicKey: pkcs11js.Handle | undefined
  if (spec.publicImportTemplate !== undefined && publicValues !== undefined) {
    const publicTemplate = spec.publicImportTemplate(publicValues)
    try {
      publicKey = callSync(member.name, 'C_CreateObject', () =>
        member.pkcs11.C_CreateObject(session, publicTemplate),
      )
    } catch (error) {
      destroyQuietly(member.pkcs11, session, secret)
      throw error
    }
    member.rememberObject(spec.ref.id, pkcs11js.CKO_PUBLIC_KEY, publicKey)
  }
  member.rememberObject(spec.ref.id, spec.secretClass, secret)
  return { secret, public: publicKey }
}

/** Destroys the objects created during a failed generation on every member, best effort. */
async function rollback(placements: Placement[], spec: ReplicatedKeySpec): Promise<void> {
  for (const { member, objects } of placements) {
    if (objects === undefined) continue
    member.forgetObject(spec.ref.id, spec.secretClass)
    member.forgetObject(spec.ref.id, pkcs11js.CKO_PUBLIC_KEY)
    try {
      await member.run('roll back key generation', async (session) => {
        destroyQuietly(member.pkcs11, session, objects.secret)
        if (objects.public !== undefined) destroyQuietly(member.pkcs11, session, objects.public)
      })
    } catch {
      // The member is failed; its objects stay and the CKA_ID check reports them on reuse.
    }
  }
}
