import { randomBytes } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import type { Logger } from '../../log/logger.js'
import type { ClusterMember } from './cluster-member.js'
import { HsmError, callSync, ckrValueOf, pkcs11FailureOf, toHsmError } from './errors.js'
import { KEK_COPY_TEMPLATE, KEK_ID, KEK_LABEL, kekImportTemplate } from './key-templates.js'
import { destroyQuietly } from './object-search.js'

/** Length of the AES-256 cluster KEK in bytes. */
const KEK_LENGTH = 32
/** CK_STATE values as defined in pkcs11t.h; pkcs11js 2.1.7 does not export them. */
const CKS_RW_USER_FUNCTIONS = 3
const CKS_RW_SO_FUNCTIONS = 4

/**
 * Creates the cluster key-encryption key with the same value on every member. With `soPins`
 * (member name to SO PIN) the KEK gets CKA_TRUSTED, so keys generated afterwards carry
 * CKA_WRAP_WITH_TRUSTED and can be wrapped only under this KEK. Every member must be healthy,
 * and no other user in this process may use the tokens meanwhile, because the login switches to
 * the security officer for a moment. Does nothing when every member already has the KEK.
 */
export async function provisionClusterKek(
  members: ClusterMember[],
  soPins: Record<string, string> | undefined,
  logger: Logger,
): Promise<void> {
  requireAllHealthy(members)
  const present = await membersWithKek(members)
  if (present.length === members.length) {
    logger.info({ members: present }, 'cluster KEK already present on every member')
    return
  }
  if (present.length > 0) throw partialKekError(members, present)
  requireSoPins(members, soPins)

  // NOTE: SoftHSM2 cannot clone a key between tokens, so the KEK value is generated here in
  // process memory, imported into each member with C_CreateObject and then overwritten.
  // Vendor HSMs clone the key inside a security domain instead and never expose its value.
  const value = randomBytes(KEK_LENGTH)
  const created: Array<{ member: ClusterMember; handle: pkcs11js.Handle }> = []
  try {
    for (const member of members) {
      const soPin = soPins?.[member.name]
      const handle =
        soPin === undefined
          ? await importKek(member, value)
          : await importTrustedKek(member, value, soPin)
      member.rememberObject(KEK_ID, pkcs11js.CKO_SECRET_KEY, handle)
      created.push({ member, handle })
    }
  } catch (error) {
    await removeKeks(created)
    throw error
  } finally {
    value.fill(0)
  }
  logger.info(
    { members: members.map((m) => m.name), trusted: soPins !== undefined },
    'cluster KEK provisioned',
  )
}

function requireAllHealthy(members: ClusterMember[]): void {
  const failed = members.filter((member) => !member.healthy).map((member) => member.name)
  if (failed.length === 0) return
  throw new HsmError(
    'hsm_unavailable',
    `cluster KEK provisioning needs every member, but ${failed.join(', ')} failed; fix them and retry`,
  )
}

function requireSoPins(members: ClusterMember[], soPins: Record<string, string> | undefined): void {
  if (soPins === undefined) return
  const missing = members.filter((member) => !soPins[member.name]).map((member) => member.name)
  if (missing.length === 0) return
  throw new HsmError(
    'hsm_pin_unavailable',
    `cluster KEK provisioning: no SO PIN given for member(s) ${missing.join(', ')}; pass one SO PIN per member or none`,
  )
}

async function membersWithKek(members: ClusterMember[]): Promise<string[]> {
  const present: string[] = []
  for (const member of members) {
    const found = await member.run('find cluster KEK', async (session) =>
      member.findObject(session, KEK_ID, pkcs11js.CKO_SECRET_KEY),
    )
    if (found !== undefined) present.push(member.name)
  }
  return present
}

function partialKekError(members: ClusterMember[], present: string[]): HsmError {
  const absent = members.map((m) => m.name).filter((name) => !present.includes(name))
  return new HsmError(
    'hsm_operation_failed',
    `cluster KEK '${KEK_LABEL}' exists on ${present.join(', ')} but not on ${absent.join(', ')}; a ` +
      'non-extractable KEK cannot be copied, so delete it on every member (pkcs11-tool ' +
      `--delete-object --type secrkey --label ${KEK_LABEL}) and provision again`,
  )
}

/** Imports the KEK as a private token object created by the user (no CKA_TRUSTED). */
async function importKek(member: ClusterMember, value: Buffer): Promise<pkcs11js.Handle> {
  return member.run('import cluster KEK', async (session) =>
    callSync(member.name, 'C_CreateObject', () =>
      member.pkcs11.C_CreateObject(session, kekImportTemplate(value, false)),
    ),
  )
}

/**
 * Imports the KEK with CKA_TRUSTED, which only the SO may set. The SO creates it as a public
 * session object, then the user copies it into a private token object and destroys the session
 * object, so the value is never stored unencrypted in the token directory.
 */
async function importTrustedKek(
  member: ClusterMember,
  value: Buffer,
  soPin: string,
): Promise<pkcs11js.Handle> {
  return member.exclusive('import trusted cluster KEK', async (session) => {
    const { pkcs11, name } = member
    let temporary: pkcs11js.Handle | undefined
    try {
      logout(pkcs11, session)
      loginSo(member, session, soPin)
      temporary = callSync(name, 'C_CreateObject', () =>
        pkcs11.C_CreateObject(session, kekImportTemplate(value, true)),
      )
      logout(pkcs11, session)
      member.loginUser(session)
      return callSync(name, 'C_CopyObject', () =>
        pkcs11.C_CopyObject(session, temporary as pkcs11js.Handle, KEK_COPY_TEMPLATE),
      )
    } finally {
      restoreUserLogin(member, session)
      if (temporary !== undefined) destroyQuietly(pkcs11, session, temporary)
    }
  })
}

function loginSo(member: ClusterMember, session: pkcs11js.Handle, soPin: string): void {
  try {
    member.pkcs11.C_Login(session, pkcs11js.CKU_SO, soPin)
  } catch (error) {
    const failure = pkcs11FailureOf(error, 'C_Login')
    throw new HsmError(
      'hsm_login_failed',
      `member '${member.name}': C_Login as security officer failed with ` +
        `${failure?.ckr ?? (error as Error).message}; check the SO PIN given for this member`,
      { member: member.name, pkcs11: failure, cause: error, memberFault: false },
    )
  }
}

function logout(pkcs11: pkcs11js.PKCS11, session: pkcs11js.Handle): void {
  try {
    pkcs11.C_Logout(session)
  } catch (error) {
    if (ckrValueOf(error) !== pkcs11js.CKR_USER_NOT_LOGGED_IN) throw error
  }
}

/**
 * Leaves the token logged in as user whatever step failed. When that is impossible the member
 * is marked failed, so that the re-check logs in again, and the original error is kept.
 */
function restoreUserLogin(member: ClusterMember, session: pkcs11js.Handle): void {
  try {
    const state = member.pkcs11.C_GetSessionInfo(session).state
    if (state === CKS_RW_USER_FUNCTIONS) return
    if (state === CKS_RW_SO_FUNCTIONS) logout(member.pkcs11, session)
    member.loginUser(session)
  } catch (error) {
    member.markFailed(toHsmError(error, member.name, 'C_Login'))
  }
}

async function removeKeks(
  created: Array<{ member: ClusterMember; handle: pkcs11js.Handle }>,
): Promise<void> {
  for (const { member, handle } of created) {
    member.forgetObject(KEK_ID, pkcs11js.CKO_SECRET_KEY)
    try {
      await member.run('remove cluster KEK', async (session) =>
        destroyQuietly(member.pkcs11, session, handle),
      )
    } catch {
      // A failed member keeps its KEK; the next provisioning reports the partial state.
    }
  }
}
