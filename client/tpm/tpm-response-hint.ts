/** TPM_RC_OBJECT_MEMORY: the TPM has no free slot for another loaded object. */
const TPM_RC_OBJECT_MEMORY = 0x902

const OBJECT_MEMORY_HINT =
  'the TPM ran out of object memory (TPM_RC_OBJECT_MEMORY, 0x902): without a resource manager ' +
  'a TPM such as swtpm keeps only three loaded objects, and the tpm2-openssl provider used for ' +
  'the TLS key loads more; run tpm2-abrmd and pass --tpm-tcti tabrmd:bus_type=system (or ' +
  'bus_type=session), or use the kernel resource manager, device:/dev/tpmrm0'

/** Returns advice for a TPM response code that the agent can explain, or undefined. */
export function tpmResponseHint(code: number): string | undefined {
  return code === TPM_RC_OBJECT_MEMORY ? OBJECT_MEMORY_HINT : undefined
}

/**
 * Returns advice for the error output of tpm2-tools or the tpm2-openssl provider when it names
 * a response code that the agent can explain, such as `ErrorCode (0x00000902)`, or undefined.
 */
export function tpmOutputHint(text: string): string | undefined {
  const match = /0x0*902\b/i.exec(text)
  return match === null ? undefined : tpmResponseHint(TPM_RC_OBJECT_MEMORY)
}
