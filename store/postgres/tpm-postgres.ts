import type {
  ActivationChallenge,
  AttestationKey,
  ChallengeRedemption,
  NonceLimits,
  NoncePut,
  NonceRedemption,
  TpmRecords,
} from '../store.js'
import type { PostgresPool } from './postgres-pool.js'

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

interface AttestationKeyRow {
  name: string
  host: string
  public_area: string
  registered_at: string
}

/** How long a used nonce or challenge stays stored, so a replay reports 'used', not 'unknown'. */
const USED_RETENTION = "interval '1 day'"

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

/** TPM attestation nonces, activation challenges and attestation keys in PostgreSQL. */
export class PostgresTpmRecords implements TpmRecords {
  constructor(private readonly pool: PostgresPool) {}

  /**
   * Stores a nonce under a SHARE ROW EXCLUSIVE lock on tpm_nonces, which conflicts with itself
   * and not with reads, so the limit counts and the insert of concurrent callers in any process
   * run one after the other.
   */
  putNonce(
    nonceHash: string,
    issuedAt: string,
    expiresAt: string,
    source: string,
    limits: NonceLimits,
  ): Promise<NoncePut> {
    return this.pool.transaction(async (client): Promise<NoncePut> => {
      await client.query('LOCK TABLE tpm_nonces IN SHARE ROW EXCLUSIVE MODE')
      await client.query(
        `DELETE FROM tpm_nonces WHERE (used_at IS NULL AND expires_at <= $1)
           OR expires_at < $1::timestamptz - ${USED_RETENTION}`,
        [issuedAt],
      )
      const own = await client.query<{ n: number }>(
        `SELECT COUNT(*) AS n FROM tpm_nonces
         WHERE used_at IS NULL AND expires_at > $1 AND source = $2`,
        [issuedAt, source],
      )
      if (own.rows[0]!.n >= limits.perSource) return { ok: false, reason: 'source_limit' }
      const shared = limits.perPrefix
      if (shared !== undefined && source.startsWith(shared.prefix)) {
        const all = await client.query<{ n: number }>(
          `SELECT COUNT(*) AS n FROM tpm_nonces
           WHERE used_at IS NULL AND expires_at > $1 AND substr(source, 1, $2) = $3`,
          [issuedAt, shared.prefix.length, shared.prefix],
        )
        if (all.rows[0]!.n >= shared.max) return { ok: false, reason: 'total_limit' }
      }
      await client.query(
        `INSERT INTO tpm_nonces (nonce_hash, issued_at, expires_at, source)
         VALUES ($1, $2, $3, $4)`,
        [nonceHash, issuedAt, expiresAt, source],
      )
      return { ok: true }
    })
  }

  async nonceCount(): Promise<number> {
    const rows = await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM tpm_nonces')
    return rows[0]!.n
  }

  /** Redeems with one conditional UPDATE; a failed one reads the row only to name the reason. */
  async redeemNonce(nonceHash: string, now: string): Promise<NonceRedemption> {
    const changed = await this.pool.execute(
      `UPDATE tpm_nonces SET used_at = $2
       WHERE nonce_hash = $1 AND used_at IS NULL AND expires_at > $2`,
      [nonceHash, now],
    )
    if (changed === 1) return { ok: true }
    const rows = await this.pool.query<{ used: boolean }>(
      'SELECT used_at IS NOT NULL AS used FROM tpm_nonces WHERE nonce_hash = $1',
      [nonceHash],
    )
    const row = rows[0]
    if (row === undefined) return { ok: false, reason: 'unknown' }
    return { ok: false, reason: row.used ? 'used' : 'expired' }
  }

  putChallenge(challenge: ActivationChallenge): Promise<void> {
    return this.pool.transaction(async (client) => {
      await client.query(
        `DELETE FROM tpm_activation_challenges
         WHERE expires_at < $1::timestamptz - ${USED_RETENTION}`,
        [challenge.issuedAt],
      )
      await client.query(
        `INSERT INTO tpm_activation_challenges
           (id, secret_hash, ak_name, nonce_hash, ek_fingerprint, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          challenge.id,
          challenge.secretHash,
          challenge.akName,
          challenge.nonceHash,
          challenge.ekFingerprint,
          challenge.issuedAt,
          challenge.expiresAt,
        ],
      )
    })
  }

  /** Marks the challenge used with one conditional UPDATE, expired or not. */
  async takeChallenge(id: string, now: string): Promise<ChallengeRedemption> {
    const taken = await this.pool.query<ChallengeRow & { expired: boolean }>(
      `UPDATE tpm_activation_challenges SET used_at = $2 WHERE id = $1 AND used_at IS NULL
       RETURNING *, expires_at <= $2 AS expired`,
      [id, now],
    )
    const row = taken[0]
    if (row !== undefined) {
      return row.expired
        ? { ok: false, reason: 'expired' }
        : { ok: true, challenge: challengeOf(row) }
    }
    const known = await this.pool.query('SELECT 1 FROM tpm_activation_challenges WHERE id = $1', [
      id,
    ])
    return { ok: false, reason: known.length === 0 ? 'unknown' : 'used' }
  }

  async putAttestationKey(key: AttestationKey): Promise<void> {
    await this.pool.execute(
      `INSERT INTO tpm_attestation_keys (name, host, public_area, registered_at)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (name) DO UPDATE SET host = excluded.host,
         public_area = excluded.public_area, registered_at = excluded.registered_at`,
      [key.name, key.host, key.publicArea, key.registeredAt],
    )
  }

  async attestationKey(name: string): Promise<AttestationKey | undefined> {
    const rows = await this.pool.query<AttestationKeyRow>(
      'SELECT * FROM tpm_attestation_keys WHERE name = $1',
      [name],
    )
    const row = rows[0]
    if (row === undefined) return undefined
    return {
      name: row.name,
      host: row.host,
      publicArea: row.public_area,
      registeredAt: row.registered_at,
    }
  }

  async removeAttestationKey(name: string): Promise<boolean> {
    return (await this.pool.execute('DELETE FROM tpm_attestation_keys WHERE name = $1', [name])) > 0
  }
}
