import { TpmReader } from '../../crypto-backend/pki/tpm/tpm-reader.js'
import { runTpmTool } from './tpm-tools.js'
import { tpmResponseHint } from './tpm-response-hint.js'

const TPM_ST_SESSIONS = 0x8002
const TPM_CC_CERTIFY = 0x00000148
const TPM_RS_PW = 0x40000009
const TPM_ALG_NULL = 0x0010
/** An empty password session: handle, empty nonce, no attributes, empty HMAC. */
const PASSWORD_SESSION_BYTES = 9

/** The TPM's answer to TPM2_Certify: the TPMS_ATTEST and the signing key's TPMT_SIGNATURE. */
export interface CertifyResult {
  readonly attest: Buffer
  readonly signature: Buffer
}

/** Marshals TPM2_Certify of `objectHandle` by `signHandle` with empty-password sessions. */
export function certifyCommand(objectHandle: number, signHandle: number, nonce: Buffer): Buffer {
  if (nonce.length > 64) throw new RangeError(`the nonce is ${nonce.length} bytes; at most 64`)
  const session = Buffer.alloc(PASSWORD_SESSION_BYTES)
  session.writeUInt32BE(TPM_RS_PW, 0)
  const body = Buffer.concat([
    u32(objectHandle),
    u32(signHandle),
    u32(2 * PASSWORD_SESSION_BYTES),
    session,
    session,
    u16(nonce.length),
    nonce,
    u16(TPM_ALG_NULL),
  ])
  return Buffer.concat([u16(TPM_ST_SESSIONS), u32(10 + body.length), u32(TPM_CC_CERTIFY), body])
}

/** Parses a TPM2_Certify response; throws with the TPM response code when it is not success. */
export function parseCertifyResponse(response: Buffer): CertifyResult {
  const reader = new TpmReader(response, 'TPM2_Certify response')
  reader.u16()
  const size = reader.u32()
  const code = reader.u32()
  if (code !== 0) {
    const hint = tpmResponseHint(code)
    const message = `TPM2_Certify failed with TPM response code 0x${code.toString(16)}`
    throw new Error(hint === undefined ? message : `${message}; ${hint}`)
  }
  if (size !== response.length) {
    throw new Error(`TPM2_Certify response claims ${size} bytes but has ${response.length}`)
  }
  const parameterSize = reader.u32()
  const start = reader.position
  const attest = reader.sized('certifyInfo', 1024)
  const signature = reader.slice(reader.position, start + parameterSize)
  return { attest: Buffer.from(attest), signature: Buffer.from(signature) }
}

/**
 * Runs TPM2_Certify through `tpm2_send`, because tpm2_certify of tpm2-tools 5.4 sends fixed
 * qualifying data instead of the caller's nonce. A raw command reaches objects only by
 * persistent handle when a resource manager sits between, so both keys must be persistent.
 */
export async function certifyPersistent(
  tcti: string,
  objectHandle: number,
  signHandle: number,
  nonce: Buffer,
): Promise<CertifyResult> {
  const command = certifyCommand(objectHandle, signHandle, nonce)
  for (let attempt = 1; ; attempt++) {
    const { stdout } = await runTpmTool('tpm2_send', [], tcti, command)
    if (attempt >= MAX_ATTEMPTS || !RETRY_CODES.has(responseCode(stdout))) {
      return parseCertifyResponse(stdout)
    }
  }
}

/** TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING: the TPM asks to send the command again. */
const RETRY_CODES = new Set([0x922, 0x908, 0x90a])
const MAX_ATTEMPTS = 5

function responseCode(response: Buffer): number {
  return response.length >= 10 ? response.readUInt32BE(6) : 0
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2)
  buffer.writeUInt16BE(value)
  return buffer
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(value >>> 0)
  return buffer
}
