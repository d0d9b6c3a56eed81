import type {
  Application,
  AuditCheckpoint,
  AuditEntry,
  AuditHead,
  AuditRecord,
  EnrollmentToken,
  IssuedCertificate,
  KeyVersion,
  SerialSighting,
  Store,
  TokenRedemption,
} from '../store.js'
import { PostgresAuditLog } from './audit-postgres.js'
import { PostgresControls } from './controls-postgres.js'
import { migrate } from './migrate.js'
import { PostgresPool, type PostgresPoolOptions } from './postgres-pool.js'
import {
  toApplication,
  toCertificate,
  toKeyVersion,
  toToken,
  type ApplicationRow,
  type CertificateRow,
  type KeyRow,
  type TokenRow,
} from './rows.js'
import { PostgresTpmRecords } from './tpm-postgres.js'
import { PostgresQuotaLedger } from './quota-postgres.js'

/**
 * Stores the newest serial unless a different serial with a later notBefore is stored: the
 * conditional DO UPDATE runs under the row lock of the conflicting row, so the comparison and
 * the write are one atomic step. No returned row means the update was skipped: 'older'.
 */
const RECORD_SERIAL = `
  INSERT INTO newest_serials AS s (app, host, serial, not_before) VALUES ($1, $2, $3, $4)
  ON CONFLICT (app, host) DO UPDATE SET serial = excluded.serial, not_before = excluded.not_before
  WHERE s.serial = excluded.serial OR s.not_before <= excluded.not_before
  RETURNING 1`

/**
 * The shared store for several gateway nodes: PostgreSQL through a connection pool. A call
 * fails with StoreUnavailableError when no connection is available within the acquire timeout
 * or a statement gets no response within the query timeout. A write is committed when its
 * promise resolves.
 */
export class PostgresStore implements Store {
  readonly tpm: PostgresTpmRecords
  readonly controls: PostgresControls
  /** Quota counters that every node on this database shares. */
  readonly quotas: PostgresQuotaLedger
  private readonly audit: PostgresAuditLog

  private constructor(private readonly pool: PostgresPool) {
    this.quotas = new PostgresQuotaLedger(pool)
    this.audit = new PostgresAuditLog(pool)
    this.tpm = new PostgresTpmRecords(pool)
    this.controls = new PostgresControls(pool)
  }

  /**
   * Opens a pool, applies pending migrations and returns the store. Throws
   * StoreUnavailableError when the database cannot be reached, MigrationError when a migration
   * fails; the pool is closed in both cases.
   */
  static async open(options: PostgresPoolOptions): Promise<PostgresStore> {
    const pool = new PostgresPool(options)
    try {
      await migrate(pool)
    } catch (error) {
      await pool.close()
      throw error
    }
    return new PostgresStore(pool)
  }

  /** The database URL with its password replaced, for logs. */
  get address(): string {
    return this.pool.address
  }

  async putKeyVersion(key: KeyVersion): Promise<void> {
    await this.pool.execute(
      `INSERT INTO keys (name, version, type, cka_id, label, state, owner, tags, classification,
         created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
       ON CONFLICT (name, version) DO UPDATE SET state = excluded.state,
         tags = excluded.tags, classification = excluded.classification`,
      [
        key.name,
        key.version,
        key.type,
        key.ckaId,
        key.label,
        key.state,
        key.owner,
        JSON.stringify(key.tags),
        key.classification,
        key.createdAt,
      ],
    )
  }

  async keyVersions(name: string): Promise<KeyVersion[]> {
    const rows = await this.pool.query<KeyRow>(
      'SELECT * FROM keys WHERE name = $1 ORDER BY version DESC',
      [name],
    )
    return rows.map(toKeyVersion)
  }

  async listKeys(): Promise<KeyVersion[]> {
    const rows = await this.pool.query<KeyRow>(
      'SELECT DISTINCT ON (name) * FROM keys ORDER BY name, version DESC',
    )
    return rows.map(toKeyVersion)
  }

  async putApplication(app: Application): Promise<void> {
    await this.pool.execute(
      `INSERT INTO applications (name, team, hosts, addresses, suspended, created_at)
       VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)
       ON CONFLICT (name) DO UPDATE SET team = excluded.team, hosts = excluded.hosts,
         addresses = excluded.addresses, suspended = excluded.suspended`,
      [
        app.name,
        app.team,
        JSON.stringify(app.hosts),
        JSON.stringify(app.addresses),
        app.suspended,
        app.createdAt,
      ],
    )
  }

  async application(name: string): Promise<Application | undefined> {
    const rows = await this.pool.query<ApplicationRow>(
      'SELECT * FROM applications WHERE name = $1',
      [name],
    )
    return rows[0] === undefined ? undefined : toApplication(rows[0])
  }

  async listApplications(): Promise<Application[]> {
    const rows = await this.pool.query<ApplicationRow>('SELECT * FROM applications ORDER BY name')
    return rows.map(toApplication)
  }

  async appendAudit(entry: AuditEntry): Promise<AuditRecord> {
    const [record] = await this.audit.appendBatch([entry])
    return record!
  }

  appendAuditBatch(entries: AuditEntry[]): Promise<AuditRecord[]> {
    return this.audit.appendBatch(entries)
  }

  auditRecords(node: string): Promise<AuditRecord[]> {
    return this.audit.records(node)
  }

  auditRecordsAfter(writer: string, afterSeq: number, limit: number): Promise<AuditRecord[]> {
    return this.audit.recordsAfter(writer, afterSeq, limit)
  }

  auditHeads(): Promise<AuditHead[]> {
    return this.audit.heads()
  }

  putAuditCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
    return this.audit.putCheckpoint(checkpoint)
  }

  auditCheckpoints(writer: string): Promise<AuditCheckpoint[]> {
    return this.audit.checkpoints(writer)
  }

  auditWriters(): Promise<string[]> {
    return this.audit.writers()
  }

  async putCertificate(certificate: IssuedCertificate): Promise<void> {
    await this.pool.execute(
      `INSERT INTO certificates (serial, app, host, addresses, not_before, not_after,
         key_protection, status, revoked_at, revocation_reason, issued_at)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11)`,
      [
        certificate.serial,
        certificate.app,
        certificate.host,
        JSON.stringify(certificate.addresses),
        certificate.notBefore,
        certificate.notAfter,
        certificate.keyProtection,
        certificate.status,
        certificate.revokedAt,
        certificate.revocationReason,
        certificate.issuedAt,
      ],
    )
  }

  async certificate(serial: string): Promise<IssuedCertificate | undefined> {
    const rows = await this.pool.query<CertificateRow>(
      'SELECT * FROM certificates WHERE serial = $1',
      [serial],
    )
    return rows[0] === undefined ? undefined : toCertificate(rows[0])
  }

  async certificatesOf(app: string): Promise<IssuedCertificate[]> {
    const rows = await this.pool.query<CertificateRow>(
      'SELECT * FROM certificates WHERE app = $1 ORDER BY not_before, serial',
      [app],
    )
    return rows.map(toCertificate)
  }

  async revokeCertificate(serial: string, reason: string, at: string): Promise<boolean> {
    const changed = await this.pool.execute(
      `UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3
       WHERE serial = $1 AND status = 'active'`,
      [serial, at, reason],
    )
    return changed === 1
  }

  async revokedCertificates(now: string): Promise<IssuedCertificate[]> {
    const rows = await this.pool.query<CertificateRow>(
      `SELECT * FROM certificates WHERE status = 'revoked' AND not_after > $1
       ORDER BY revoked_at, serial`,
      [now],
    )
    return rows.map(toCertificate)
  }

  /**
   * Returns a value that changes whenever a certificate is revoked: the number of revoked
   * certificates and the newest revocation time. Revocations are never undone, so the count
   * grows with each one even when clocks of the revoking nodes disagree. One index-only scan.
   */
  async revocationMark(): Promise<string> {
    const rows = await this.pool.query<{ revoked: number; newest: string | null }>(
      `SELECT count(*) AS revoked, max(revoked_at) AS newest FROM certificates
       WHERE status = 'revoked'`,
    )
    return `${rows[0]?.revoked ?? 0}/${rows[0]?.newest ?? ''}`
  }

  async putEnrollmentToken(token: EnrollmentToken): Promise<void> {
    await this.pool.execute(
      `INSERT INTO enrollment_tokens (token_hash, app, host, addresses, expires_at, created_at,
         used_at)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)`,
      [
        token.tokenHash,
        token.app,
        token.host,
        JSON.stringify(token.addresses),
        token.expiresAt,
        token.createdAt,
        token.usedAt,
      ],
    )
  }

  async enrollmentToken(tokenHash: string): Promise<EnrollmentToken | undefined> {
    const rows = await this.pool.query<TokenRow>(
      'SELECT * FROM enrollment_tokens WHERE token_hash = $1',
      [tokenHash],
    )
    return rows[0] === undefined ? undefined : toToken(rows[0])
  }

  /** Redeems with one conditional UPDATE; a failed one reads the row only to name the reason. */
  async redeemEnrollmentToken(tokenHash: string, now: string): Promise<TokenRedemption> {
    const redeemed = await this.pool.query<TokenRow>(
      `UPDATE enrollment_tokens SET used_at = $2
       WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
       RETURNING *`,
      [tokenHash, now],
    )
    if (redeemed[0] !== undefined) {
      return { ok: true, token: { ...toToken(redeemed[0]), usedAt: now } }
    }
    const rows = await this.pool.query<{ used: boolean }>(
      'SELECT used_at IS NOT NULL AS used FROM enrollment_tokens WHERE token_hash = $1',
      [tokenHash],
    )
    const row = rows[0]
    if (row === undefined) return { ok: false, reason: 'unknown' }
    return { ok: false, reason: row.used ? 'used' : 'expired' }
  }

  async recordSerialSeen(
    app: string,
    host: string,
    serial: string,
    notBefore: string,
  ): Promise<SerialSighting> {
    const rows = await this.pool.query(RECORD_SERIAL, [app, host, serial, notBefore])
    return rows.length === 1 ? 'newest' : 'older'
  }

  /** Closes the pool; calls made afterwards fail with StoreUnavailableError 'closed'. */
  close(): Promise<void> {
    return this.pool.close()
  }
}
