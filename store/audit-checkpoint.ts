import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import type { AuditCheckpoint } from './store.js'

/** First line of every checkpoint's signed text; it names the format version. */
export const CHECKPOINT_FORMAT = 'hsmgate-audit-checkpoint-v1'

/** The fields of a checkpoint that its signature covers. */
export type CheckpointClaims = Pick<
  AuditCheckpoint,
  'writer' | 'seq' | 'headHash' | 'time' | 'signer' | 'keyId'
>

/**
 * Returns the exact text a checkpoint's signature covers: the format line, then one
 * `name=value` line per field and a final newline. `openssl dgst -sha256 -verify` checks the
 * signature over these bytes. Throws TypeError when a field contains a line break, which would
 * make two different checkpoints produce the same text.
 */
export function checkpointText(claims: CheckpointClaims): string {
  const fields: [string, string][] = [
    ['writer', claims.writer],
    ['seq', String(claims.seq)],
    ['head', claims.headHash],
    ['time', claims.time],
    ['signer', claims.signer],
    ['key', claims.keyId],
  ]
  for (const [name, value] of fields) {
    if (/[\r\n]/.test(value)) throw new TypeError(`checkpoint field ${name} contains a line break`)
  }
  return [CHECKPOINT_FORMAT, ...fields.map(([name, value]) => `${name}=${value}`), ''].join('\n')
}

/**
 * Public keys that verification accepts for checkpoints, compared by their DER
 * SubjectPublicKeyInfo, so PEM formatting differences do not matter.
 */
export class TrustedAuditKeys {
  private readonly keys = new Set<string>()

  /** Adds every PEM public key in `pem`; returns how many it added. */
  addPem(pem: string): number {
    const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? []
    for (const block of blocks) this.keys.add(spkiBase64(createPublicKey(block)))
    return blocks.length
  }

  get size(): number {
    return this.keys.size
  }

  /** Tells whether a PEM public key is one of the trusted keys; invalid PEM is not. */
  trusts(pem: string): boolean {
    try {
      return this.keys.has(spkiBase64(createPublicKey(pem)))
    } catch {
      return false
    }
  }
}

function spkiBase64(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64')
}

/** The result of checking one checkpoint's signature and key. */
export type CheckpointCheck =
  { ok: true } | { ok: false; reason: 'untrusted_key' | 'bad_signature' }

/**
 * Checks that a checkpoint is signed by a trusted audit key: the stored public key must be
 * trusted and the ECDSA P-256 SHA-256 signature (DER) must verify over checkpointText().
 */
export function checkCheckpoint(
  checkpoint: AuditCheckpoint,
  trusted: TrustedAuditKeys,
): CheckpointCheck {
  if (!trusted.trusts(checkpoint.publicKey)) return { ok: false, reason: 'untrusted_key' }
  let valid = false
  try {
    valid = verify(
      'sha256',
      Buffer.from(checkpointText(checkpoint), 'utf8'),
      { key: createPublicKey(checkpoint.publicKey), dsaEncoding: 'der' },
      Buffer.from(checkpoint.signature, 'base64'),
    )
  } catch {
    valid = false
  }
  return valid ? { ok: true } : { ok: false, reason: 'bad_signature' }
}
