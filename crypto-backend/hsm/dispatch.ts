import pkcs11js from 'pkcs11js'
import type { ClusterMember } from './cluster-member.js'
import { HsmError } from './errors.js'

/** The key an operation needs: its CKA_ID and the CKO class of the object to use. */
export interface KeySelector {
  id: Buffer
  objectClass: number
}

export type MemberAction<T> = (
  member: ClusterMember,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
) => Promise<T>

/** Number of members one operation tries after member faults: the first and one retry. */
const MAX_FAULTED_ATTEMPTS = 2

/** Result of one attempt; `missing` means the member has no object for the key. */
type Attempt<T> = { missing: true } | { missing: false; value: T }

/**
 * Runs an operation on the first of `candidates` that is healthy and has the key. A member
 * fault marks that member failed (inside ClusterMember.run) and the operation is tried once more
 * on the next candidate. A member without the key, or whose cached handle became invalid, is
 * skipped without counting as a retry.
 */
export async function runOnKeyHolder<T>(
  candidates: ClusterMember[],
  key: KeySelector,
  operation: string,
  action: MemberAction<T>,
): Promise<T> {
  const faults: HsmError[] = []
  const missingOn: string[] = []
  for (const member of candidates) {
    if (!member.healthy) continue
    if (faults.length > 0) member.noteRetry()
    try {
      const attempt = await attemptOn(member, key, operation, action)
      if (!attempt.missing) return attempt.value
      missingOn.push(member.name)
    } catch (error) {
      if (!(error instanceof HsmError)) throw error
      if (error.code === 'hsm_key_not_found') {
        member.forgetObject(key.id, key.objectClass)
        missingOn.push(member.name)
      } else if (error.memberFault) {
        faults.push(error)
        if (faults.length >= MAX_FAULTED_ATTEMPTS) break
      } else {
        throw error
      }
    }
  }
  throw noMemberError(operation, key, faults, missingOn)
}

/** Runs an operation that needs no key (C_GenerateRandom) with the same failover. */
export async function runOnAnyMember<T>(
  candidates: ClusterMember[],
  operation: string,
  action: (member: ClusterMember, session: pkcs11js.Handle) => Promise<T>,
): Promise<T> {
  const faults: HsmError[] = []
  for (const member of candidates) {
    if (!member.healthy) continue
    if (faults.length > 0) member.noteRetry()
    try {
      return await member.run(operation, (session) => action(member, session))
    } catch (error) {
      if (!(error instanceof HsmError) || !error.memberFault) throw error
      faults.push(error)
      if (faults.length >= MAX_FAULTED_ATTEMPTS) break
    }
  }
  throw noMemberError(operation, undefined, faults, [])
}

const KEY_CLASSES = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_SECRET_KEY, pkcs11js.CKO_PUBLIC_KEY]

/**
 * Tells whether any healthy member has a key object (private, public or secret) with this
 * CKA_ID. Members with a fault are skipped. Throws 'hsm_unavailable' when no member responds.
 */
export async function anyMemberHoldsKey(members: ClusterMember[], id: Buffer): Promise<boolean> {
  let answered = false
  for (const member of members.filter((m) => m.healthy)) {
    try {
      const found = await member.run('hasKey', async (session) =>
        KEY_CLASSES.some(
          (objectClass) => member.findObject(session, id, objectClass) !== undefined,
        ),
      )
      if (found) return true
      answered = true
    } catch (error) {
      if (!(error instanceof HsmError) || !error.memberFault) throw error
    }
  }
  if (answered) return false
  throw new HsmError('hsm_unavailable', 'hasKey: no healthy HSM member; see status()')
}

function attemptOn<T>(
  member: ClusterMember,
  key: KeySelector,
  operation: string,
  action: MemberAction<T>,
): Promise<Attempt<T>> {
  return member.run(operation, async (session): Promise<Attempt<T>> => {
    const handle = member.findObject(session, key.id, key.objectClass)
    if (handle === undefined) return { missing: true }
    return { missing: false, value: await action(member, session, handle) }
  })
}

function noMemberError(
  operation: string,
  key: KeySelector | undefined,
  faults: HsmError[],
  missingOn: string[],
): HsmError {
  const lastFault = faults.at(-1)
  if (lastFault !== undefined) {
    const failed = faults.map((fault) => fault.member ?? '?').join(', ')
    return new HsmError(
      'hsm_unavailable',
      `${operation} failed on member(s) ${failed} and no further healthy member is left to ` +
        `retry: ${lastFault.message}`,
      { cause: lastFault, memberFault: false },
    )
  }
  if (key !== undefined && missingOn.length > 0) {
    return new HsmError(
      'hsm_key_not_found',
      `key with CKA_ID ${key.id.toString('hex')} not found on healthy member(s) ` +
        `${missingOn.join(', ')}; check the key id, or generate the key first`,
    )
  }
  return new HsmError(
    'hsm_unavailable',
    `${operation}: no healthy HSM member; see status() for each member's last error`,
  )
}
