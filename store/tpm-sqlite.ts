import type Database from 'better-sqlite3'
import type {
  ActivationChallenge,
  AttestationKey,
  ChallengeRedemption,
  NonceLimits,
  NoncePut,
  NonceRedemption,
  TpmRecords,
} from './store.js'

/** How long a used nonce or challenge stays stored, so a replay reports 'used', not 'unknown'. */
const USED_RETENTION_MS = 24 * 3_600_000

/**
 * TPM attestation state in SQLite: registered attestation keys and the single-use nonces that
 * enrollment and renewal put into TPM2_Certify. Only the SHA-256 of a nonce is stored.
 */
export class SqliteTpmRecords implements TpmRecords {
  constructor(private readonly db: Database.Database) {}

  /**
   * Stores a new nonce from `source` unless that would exceed `limits`. In the same transaction
   * it deletes unused nonces that have expired and used ones older than a day, so the table holds
   * at most the outstanding nonces that the limits allow plus a day of redeemed ones.
   */
  async putNonce(
    nonceHash: string,
    issuedAt: string,
    expiresAt: string,
    source: string,
    limits: NonceLimits,
  ): Promise<NoncePut> {
    const cutoff = new Date(Date.parse(issuedAt) - USED_RETENTION_MS).toISOString()
    return this.db
      .transaction((): NoncePut => {
        this.db
          .prepare(
            'DELETE FROM tpm_nonces WHERE (used_at IS NULL AND expires_at <= ?) OR expires_at < ?',
          )
          .run(issuedAt, cutoff)
        const outstanding = this.db.prepare(
          `SELECT COUNT(*) AS n FROM tpm_nonces
           WHERE used_at IS NULL AND expires_at > ? AND source = ?`,
        )
        const own = outstanding.get(issuedAt, source) as { n: number }
        if (own.n >= limits.perSource) return { ok: false, reason: 'source_limit' }
        const shared = limits.perPrefix
        if (shared !== undefined && source.startsWith(shared.prefix)) {
          const all = this.db
            .prepare(
              `SELECT COUNT(*) AS n FROM tpm_nonces
               WHERE used_at IS NULL AND expires_at > ? AND substr(source, 1, ?) = ?`,
            )
            .get(issuedAt, shared.prefix.length, shared.prefix) as { n: number }
          if (all.n >= shared.max) return { ok: false, reason: 'total_limit' }
        }
        this.db
          .prepare(
            `INSERT INTO tpm_nonces (nonce_hash, issued_at, expires_at, source)
             VALUES (?, ?, ?, ?)`,
          )
          .run(nonceHash, issuedAt, expiresAt, source)
        return { ok: true }
      })
      .immediate()
  }

  async nonceCount(): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM tpm_nonces').get() as { n: number }).n
  }

  async putChallenge(challenge: ActivationChallenge): Promise<void> {
    const cutoff = new Date(Date.parse(challenge.issuedAt) - USED_RETENTION_MS).toISOString()
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM tpm_activation_challenges WHERE expires_at < ?').run(cutoff)
      this.db
        .prepare(
          `INSERT INTO tpm_activation_challenges
             (id, secret_hash, ak_name, nonce_hash, ek_fingerprint, issued_at, expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          challenge.id,
          challenge.secretHash,
          challenge.akName,
          challenge.nonceHash,
          challenge.ekFingerprint,
          challenge.issuedAt,
          challenge.expiresAt,
        )
    })()
  }

  async takeChallenge(id: string, now: string): Promise<ChallengeRedemption> {
    return this.db
      .transaction((): ChallengeRedemption => {
        const row = this.db
          .prepare('SELECT * FROM tpm_activation_challenges WHERE id = ?')
          .get(id) as ChallengeRow | undefined
        if (row === undefined) return { ok: false, reason: 'unknown' }
        if (row.used_at !== null) return { ok: false, reason: 'used' }
        this.db
          .prepare('UPDATE tpm_activation_challenges SET used_at = ? WHERE id = ?')
          .run(now, id)
        if (row.expires_at <= now) return { ok: false, reason: 'expired' }
        return { ok: true, challenge: challengeOf(row) }
      })
      .immediate()
  }

  async redeemNonce(nonceHash: string, now: string): Promise<NonceRedemption> {
    return this.db
      .transaction((): NonceRedemption => {
        const row = this.db
          .prepare('SELECT expires_at, used_at FROM tpm_nonces WHERE nonce_hash = ?')
          .get(nonceHash) as { expires_at: string; used_at: string | null } | undefined
        if (row === undefined) return { ok: false, reason: 'unknown' }
        if (row.used_at !== null) return { ok: false, reason: 'used' }
        if (row.expires_at <= now) return { ok: false, reason: 'expired' }
        this.db
          .prepare('UPDATE tpm_nonces SET used_at = ? WHERE nonce_hash = ?')
          .run(now, nonceHash)
        return { ok: true }
      })
      .immediate()
  }

  async putAttestationKey(key: AttestationKey): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO tpm_attestation_keys (name, host, public_area, registered_at)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET host = excluded.host,
           public_area = excluded.public_area, registered_at = excluded.registered_at`,
      )
      .run(key.name, key.host, key.publicArea, key.registeredAt)
  }

  async attestationKey(name: string): Promise<AttestationKey | undefined> {
    const row = this.db.prepare('SELECT * FROM tpm_attestation_keys WHERE name = ?').get(name) as
      { name: string; host: string; public_area: string; registered_at: string } | undefined
    if (row === undefined) return undefined
    return {
      name: row.name,
      host: row.host,
      publicArea: row.public_area,
      registeredAt: row.registered_at,
    }
  }

  async removeAttestationKey(name: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM tpm_attestation_keys WHERE name = ?').run(name).changes > 0
  }
}

interface ChallengeRow {
  id: string
  secret_hash: string
  ak_name: string
  nonce_hash: string
  ek_fingerprint: string
  issued_at: string
  expires_at: string
  used_at: string | null
}

function challengeOf(row: ChallengeRow): ActivationChallenge {
  return {
    id: row.id,
    secretHash: row.secret_hash,
    akName: row.ak_name,
    nonceHash: row.nonce_hash,
    ekFingerprint: row.ek_fingerprint,
    issuedAt: row.issued_at,
    expiresAt: row.expires_at,
  }
}
