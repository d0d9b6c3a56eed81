import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteAuditLog } from './audit-sqlite.js'
import { SqliteControls } from './controls-sqlite.js'
import { SqliteTpmRecords } from './tpm-sqlite.js'
import { sqliteMigrations } from './migrations/sqlite.js'
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
} from './store.js'

interface KeyRow {
  name: string
  version: number
  type: KeyVersion['type']
  cka_id: string
  label: string
  state: KeyVersion['state']
  owner: string
  tags: string
  classification: KeyVersion['classification']
  created_at: string
}

interface ApplicationRow {
  name: string
  team: string
  hosts: string
  addresses: string
  suspended: number
  created_at: string
}

/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL, so an appended audit
 * record survives a crash once `appendAudit` resolves. The async methods run their work
 * synchronously through better-sqlite3 before they return, so each operation is one
 * transaction that no await splits, and a call blocks the event loop for the length of it.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database
  /** Prepared statements of the key lookups, which run on every request. */
  private readonly statements = new Map<string, Database.Statement>()
  private readonly auditLog: SqliteAuditLog
  /** Approvals, approval holds and first uses, for dual control and anomaly rules. */
  readonly controls: SqliteControls
  /** TPM attestation nonces, activation challenges and attestation keys. */
  readonly tpm: SqliteTpmRecords

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.db.pragma('busy_timeout = 5000')
    this.migrate()
    this.auditLog = new SqliteAuditLog(this.db)
    this.controls = new SqliteControls(this.db)
    this.tpm = new SqliteTpmRecords(this.db)
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)')
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as {
      v: number | null
    }
    const current = row.v ?? 0
    sqliteMigrations.slice(current).forEach((sql, index) => {
      this.db.transaction(() => {
        this.db.exec(sql)
        this.db
          .prepare('INSERT INTO schema_migrations (version) VALUES (?)')
          .run(current + index + 1)
      })()
    })
  }

  async putKeyVersion(key: KeyVersion): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO keys (name, version, type, cka_id, label, state, owner, tags,
           classification, created_at)
         VALUES (@name, @version, @type, @ckaId, @label, @state, @owner, @tags,
           @classification, @createdAt)
         ON CONFLICT (name, version) DO UPDATE SET state = excluded.state,
           tags = excluded.tags, classification = excluded.classification`,
      )
      .run({ ...key, tags: JSON.stringify(key.tags) })
  }

  async keyVersions(name: string): Promise<KeyVersion[]> {
    const rows = this.statement('SELECT * FROM keys WHERE name = ? ORDER BY version DESC').all(
      name,
    ) as KeyRow[]
    return rows.map(toKeyVersion)
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql)
    if (statement === undefined) {
      statement = this.db.prepare(sql)
      this.statements.set(sql, statement)
    }
    return statement
  }

  async listKeys(): Promise<KeyVersion[]> {
    const rows = this.db
      .prepare(
        `SELECT k.* FROM keys k
         JOIN (SELECT name, MAX(version) AS version FROM keys GROUP BY name) latest
           ON latest.name = k.name AND latest.version = k.version
         ORDER BY k.name`,
      )
      .all() as KeyRow[]
    return rows.map(toKeyVersion)
  }

  async putApplication(app: Application): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO applications (name, team, hosts, addresses, suspended, created_at)
         VALUES (@name, @team, @hosts, @addresses, @suspended, @createdAt)
         ON CONFLICT (name) DO UPDATE SET team = excluded.team, hosts = excluded.hosts,
           addresses = excluded.addresses, suspended = excluded.suspended`,
      )
      .run({
        ...app,
        hosts: JSON.stringify(app.hosts),
        addresses: JSON.stringify(app.addresses),
        suspended: app.suspended ? 1 : 0,
      })
  }

  async application(name: string): Promise<Application | undefined> {
    const row = this.statement('SELECT * FROM applications WHERE name = ?').get(name) as
      ApplicationRow | undefined
    return row === undefined ? undefined : toApplication(row)
  }

  async listApplications(): Promise<Application[]> {
    const rows = this.db
      .prepare('SELECT * FROM applications ORDER BY name')
      .all() as ApplicationRow[]
    return rows.map(toApplication)
  }

  async appendAudit(entry: AuditEntry): Promise<AuditRecord> {
    return this.auditLog.appendBatch([entry])[0]!
  }

  async appendAuditBatch(entries: AuditEntry[]): Promise<AuditRecord[]> {
    return this.auditLog.appendBatch(entries)
  }

  async auditRecords(node: string): Promise<AuditRecord[]> {
    return this.auditLog.records(node)
  }

  async auditRecordsAfter(writer: string, afterSeq: number, limit: number): Promise<AuditRecord[]> {
    return this.auditLog.recordsAfter(writer, afterSeq, limit)
  }

  async auditHeads(): Promise<AuditHead[]> {
    return this.auditLog.heads()
  }

  async putAuditCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
    this.auditLog.putCheckpoint(checkpoint)
  }

  async auditCheckpoints(writer: string): Promise<AuditCheckpoint[]> {
    return this.auditLog.checkpoints(writer)
  }

  async auditWriters(): Promise<string[]> {
    return this.auditLog.writers()
  }

  async putCertificate(certificate: IssuedCertificate): Promise<void> {
    this.statement(
      `INSERT INTO certificates (serial, app, host, addresses, not_before, not_after,
         key_protection, status, revoked_at, revocation_reason, issued_at)
       VALUES (@serial, @app, @host, @addresses, @notBefore, @notAfter, @keyProtection, @status,
         @revokedAt, @revocationReason, @issuedAt)`,
    ).run({ ...certificate, addresses: JSON.stringify(certificate.addresses) })
  }

  async certificate(serial: string): Promise<IssuedCertificate | undefined> {
    const row = this.statement('SELECT * FROM certificates WHERE serial = ?').get(serial) as
      CertificateRow | undefined
    return row === undefined ? undefined : toCertificate(row)
  }

  async certificatesOf(app: string): Promise<IssuedCertificate[]> {
    const rows = this.statement(
      'SELECT * FROM certificates WHERE app = ? ORDER BY not_before, serial',
    ).all(app) as CertificateRow[]
    return rows.map(toCertificate)
  }

  async revokeCertificate(serial: string, reason: string, at: string): Promise<boolean> {
    const result = this.statement(
      `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
       WHERE serial = ? AND status = 'active'`,
    ).run(at, reason, serial)
    return result.changes === 1
  }

  async revokedCertificates(now: string): Promise<IssuedCertificate[]> {
    const rows = this.statement(
      `SELECT * FROM certificates WHERE status = 'revoked' AND not_after > ?
       ORDER BY revoked_at, serial`,
    ).all(now) as CertificateRow[]
    return rows.map(toCertificate)
  }

  async putEnrollmentToken(token: EnrollmentToken): Promise<void> {
    this.statement(
      `INSERT INTO enrollment_tokens (token_hash, app, host, addresses, expires_at, created_at,
         used_at)
       VALUES (@tokenHash, @app, @host, @addresses, @expiresAt, @createdAt, @usedAt)`,
    ).run({ ...token, addresses: JSON.stringify(token.addresses) })
  }

  async enrollmentToken(tokenHash: string): Promise<EnrollmentToken | undefined> {
    const row = this.statement('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(
      tokenHash,
    ) as TokenRow | undefined
    return row === undefined ? undefined : toToken(row)
  }

  async redeemEnrollmentToken(tokenHash: string, now: string): Promise<TokenRedemption> {
    return this.db
      .transaction((): TokenRedemption => {
        const row = this.statement('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(
          tokenHash,
        ) as TokenRow | undefined
        if (row === undefined) return { ok: false, reason: 'unknown' }
        if (row.used_at !== null) return { ok: false, reason: 'used' }
        if (row.expires_at <= now) return { ok: false, reason: 'expired' }
        this.statement('UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ?').run(
          now,
          tokenHash,
        )
        return { ok: true, token: { ...toToken(row), usedAt: now } }
      })
      .immediate()
  }

  async recordSerialSeen(
    app: string,
    host: string,
    serial: string,
    notBefore: string,
  ): Promise<SerialSighting> {
    return this.db
      .transaction((): SerialSighting => {
        const row = this.statement(
          'SELECT serial, not_before FROM newest_serials WHERE app = ? AND host = ?',
        ).get(app, host) as { serial: string; not_before: string } | undefined
        if (row !== undefined && row.serial !== serial && row.not_before > notBefore) {
          return 'older'
        }
        this.statement(
          `INSERT INTO newest_serials (app, host, serial, not_before) VALUES (?, ?, ?, ?)
           ON CONFLICT (app, host) DO UPDATE SET serial = excluded.serial,
             not_before = excluded.not_before`,
        ).run(app, host, serial, notBefore)
        return 'newest'
      })
      .immediate()
  }

  async close(): Promise<void> {
    this.db.close()
  }
}

function toKeyVersion(row: KeyRow): KeyVersion {
  return {
    name: row.name,
    version: row.version,
    type: row.type,
    ckaId: row.cka_id,
    label: row.label,
    state: row.state,
    owner: row.owner,
    tags: JSON.parse(row.tags) as string[],
    classification: row.classification,
    createdAt: row.created_at,
  }
}

interface CertificateRow {
  serial: string
  app: string
  host: string
  addresses: string
  not_before: string
  not_after: string
  key_protection: IssuedCertificate['keyProtection']
  status: IssuedCertificate['status']
  revoked_at: string | null
  revocation_reason: string | null
  issued_at: string
}

interface TokenRow {
  token_hash: string
  app: string
  host: string
  addresses: string
  expires_at: string
  created_at: string
  used_at: string | null
}

function toCertificate(row: CertificateRow): IssuedCertificate {
  return {
    serial: row.serial,
    app: row.app,
    host: row.host,
    addresses: JSON.parse(row.addresses) as string[],
    notBefore: row.not_before,
    notAfter: row.not_after,
    keyProtection: row.key_protection,
    status: row.status,
    revokedAt: row.revoked_at,
    revocationReason: row.revocation_reason,
    issuedAt: row.issued_at,
  }
}

function toToken(row: TokenRow): EnrollmentToken {
  return {
    tokenHash: row.token_hash,
    app: row.app,
    host: row.host,
    addresses: JSON.parse(row.addresses) as string[],
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    usedAt: row.used_at,
  }
}

function toApplication(row: ApplicationRow): Application {
  return {
    name: row.name,
    team: row.team,
    hosts: JSON.parse(row.hosts) as string[],
    addresses: JSON.parse(row.addresses) as string[],
    suspended: row.suspended === 1,
    createdAt: row.created_at,
  }
}
