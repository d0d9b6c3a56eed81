import pkcs11js from 'pkcs11js'
import type { ClusterMember } from './cluster-member.js'
import { HsmError, callAsync } from './errors.js'

/** CKM_AES_KEY_WRAP_PAD (0x210A, RFC 5649), which SoftHSM2 2.6.1 supports for EC and AES keys. */
const WRAP_MECHANISM: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }
/** Output buffer for C_WrapKey; a wrapped RSA-4096 PKCS#8 key is about 2,400 bytes. */
const WRAPPED_BUFFER_LENGTH = 4096

/** Wraps `key` under `kek`; the caller overwrites the returned buffer after use. */
export async function wrapKey(
  member: ClusterMember,
  session: pkcs11js.Handle,
  kek: pkcs11js.Handle,
  key: pkcs11js.Handle,
): Promise<Buffer> {
  const output = Buffer.alloc(WRAPPED_BUFFER_LENGTH)
  return callAsync(member.name, 'C_WrapKey', () =>
    member.pkcs11.C_WrapKeyAsync(session, WRAP_MECHANISM, kek, key, output),
  )
}

/**
 * Unwraps a key under `kek` into a new object with `template`. A failed integrity check means
 * that the two members hold different KEKs; that is reported as a setup error, not a fault.
 */
export async function unwrapKey(
  member: ClusterMember,
  session: pkcs11js.Handle,
  kek: pkcs11js.Handle,
  wrapped: Buffer,
  template: pkcs11js.Template,
): Promise<pkcs11js.Handle> {
  try {
    return await callAsync(member.name, 'C_UnwrapKey', () =>
      member.pkcs11.C_UnwrapKeyAsync(session, WRAP_MECHANISM, kek, wrapped, template),
    )
  } catch (error) {
    if (!(error instanceof HsmError) || error.pkcs11 === undefined) throw error
    // SoftHSM2 2.6.1 returns CKR_GENERAL_ERROR when the AES key wrap integrity check fails.
    const integrity = [pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_WRAPPED_KEY_INVALID]
    if (!integrity.includes(error.pkcs11.value)) throw error
    throw new HsmError(
      'hsm_operation_failed',
      `member '${member.name}': C_UnwrapKey failed with ${error.pkcs11.ckr}; the cluster KEK on ` +
        "this member probably differs from the source member's; delete it on every member and " +
        'provision it again',
      { member: member.name, pkcs11: error.pkcs11, cause: error, memberFault: false },
    )
  }
}
