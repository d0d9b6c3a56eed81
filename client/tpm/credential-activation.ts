import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EkAlgorithm } from './ek-certificate.js'
import { handleText, type TpmSettings } from './tpm-key.js'
import { runTool } from './tpm-tools.js'

/** Header of a tpm2-tools credential file: the magic 0xBADCC0DE and format version 1. */
const CREDENTIAL_FILE_HEADER = Buffer.from([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1])

/** A credential activation challenge as the gateway sends it in `activation`. */
export interface ActivationChallenge {
  readonly challenge_id: string
  /** Base64 TPM2B_ID_OBJECT. */
  readonly credential_blob: string
  /** Base64 TPM2B_ENCRYPTED_SECRET. */
  readonly encrypted_secret: string
}

/**
 * Encodes a credential in the file format that tpm2_makecredential writes and
 * tpm2_activatecredential reads: the header, the TPM2B_ID_OBJECT, the TPM2B_ENCRYPTED_SECRET.
 */
export function encodeCredentialFile(credentialBlob: Buffer, encryptedSecret: Buffer): Buffer {
  return Buffer.concat([CREDENTIAL_FILE_HEADER, credentialBlob, encryptedSecret])
}

/**
 * Runs TPM2_ActivateCredential: recreates the EK of `algorithm` from its default template,
 * satisfies the EK's policy (PolicySecret of the endorsement hierarchy) and has the TPM
 * decrypt the credential for the attestation key at `settings.ak`. The TPM returns the secret
 * only when that key's name is the one the gateway bound the credential to. Throws
 * TpmToolError when the TPM refuses, such as for a credential made for another EK.
 */
export async function activateCredential(
  settings: TpmSettings,
  algorithm: EkAlgorithm,
  challenge: ActivationChallenge,
): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-activate-'))
  const { tcti } = settings
  const files = {
    ek: join(dir, 'ek.ctx'),
    session: join(dir, 'session.ctx'),
    credential: join(dir, 'credential'),
    secret: join(dir, 'secret'),
  }
  const credential = encodeCredentialFile(
    Buffer.from(challenge.credential_blob, 'base64'),
    Buffer.from(challenge.encrypted_secret, 'base64'),
  )
  writeFileSync(files.credential, credential, { mode: 0o600 })
  try {
    await runTool('tpm2_createek', ['-c', files.ek, '-G', algorithm, '-Q'], tcti)
    await runTool('tpm2_startauthsession', ['--policy-session', '-S', files.session], tcti)
    await runTool('tpm2_policysecret', ['-S', files.session, '-c', 'e', '-Q'], tcti)
    await runTool(
      'tpm2_activatecredential',
      [
        ...['-c', handleText(settings.ak), '-C', files.ek],
        ...['-i', files.credential, '-o', files.secret, '-P', `session:${files.session}`],
      ],
      tcti,
    )
    return readFileSync(files.secret)
  } finally {
    await runTool('tpm2_flushcontext', [files.session], tcti).catch(() => undefined)
    await runTool('tpm2_flushcontext', [files.ek], tcti).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
}
