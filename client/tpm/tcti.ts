/** TCTI configurations the agent accepts, as tpm2-tools and tpm2-openssl spell them. */
const TCTI_PATTERN =
  /^(device:\/dev\/tpmrm?\d+|swtpm:host=[\w.:-]+,port=\d{1,5}|tabrmd(:[\w=,.-]*)?)$/

/** Default TCTI: the kernel's resource manager, which every TPM user on the host can share. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0'

/**
 * Checks a TCTI configuration: `device:/dev/tpmrm0`, `swtpm:host=H,port=P` or
 * `tabrmd[:bus_type=session]`. Throws TypeError naming the value.
 */
export function checkTcti(tcti: string): string {
  if (!TCTI_PATTERN.test(tcti)) {
    throw new TypeError(
      `TPM TCTI '${tcti}' is not supported; use device:/dev/tpmrm0, ` +
        'swtpm:host=HOST,port=PORT or tabrmd:bus_type=session',
    )
  }
  return tcti
}

/** True when the TCTI talks to the TPM without a resource manager, so objects stay loaded. */
export function needsFlush(tcti: string): boolean {
  return tcti.startsWith('swtpm:') || /^device:\/dev\/tpm\d/.test(tcti)
}

/** Environment for tpm2-tools and the tpm2-openssl provider to use `tcti`. */
export function tctiEnv(tcti: string): NodeJS.ProcessEnv {
  return { ...process.env, TPM2TOOLS_TCTI: tcti, TPM2OPENSSL_TCTI: tcti }
}
