import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runTool, TpmToolError } from './tpm-tools.js'

/** Algorithm of an endorsement key, as tpm2_createek names it. */
export type EkAlgorithm = 'rsa' | 'ecc'

/** An EK certificate read from the TPM, with the algorithm of the EK it certifies. */
export interface EkCertificate {
  readonly der: Buffer
  readonly algorithm: EkAlgorithm
}

/**
 * NV indices of the EK certificates of the TCG default low-range templates (TCG EK Credential
 * Profile 2.0): RSA 2048 (L-1) and ECC NIST P-256 (L-2). swtpm_setup --create-ek-cert writes the
 * RSA one; its ECC certificate is for a P-384 EK at 0x01c00016, which the gateway does not take.
 */
export const EK_CERTIFICATE_INDICES: readonly { index: number; algorithm: EkAlgorithm }[] = [
  { index: 0x01c00002, algorithm: 'rsa' },
  { index: 0x01c0000a, algorithm: 'ecc' },
]

/**
 * Reads the first EK certificate that the TPM holds at the indices above, or returns undefined
 * when it holds none. Other tpm2_nvread failures are thrown as TpmToolError.
 */
export async function readEkCertificate(tcti: string): Promise<EkCertificate | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-ek-'))
  try {
    for (const { index, algorithm } of EK_CERTIFICATE_INDICES) {
      const file = join(dir, `${index.toString(16)}.der`)
      try {
        await runTool('tpm2_nvread', [`0x${index.toString(16)}`, '-o', file], tcti)
      } catch (error) {
        // TPM_RC_HANDLE (0x18b) says the index is not defined.
        if (error instanceof TpmToolError && /0x18b|handle/i.test(error.message)) continue
        throw error
      }
      return { der: trimDer(readFileSync(file)), algorithm }
    }
    return undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Cuts the certificate to its DER length: an NV index can be larger than the certificate and
 * is then padded.
 */
function trimDer(bytes: Buffer): Buffer {
  if (bytes.length < 4 || bytes[0] !== 0x30 || bytes[1] !== 0x82) return bytes
  return bytes.subarray(0, 4 + bytes.readUInt16BE(2))
}
