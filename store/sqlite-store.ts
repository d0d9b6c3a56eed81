import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
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

interface AuditRow {
  node: string
  seq: number
  time: string
  principal: string
  cert_serial: string | null
  source_address: string | null
  decision_id: string
  operation: string
  key_name: string | null
  key_version: number | null
  outcome: AuditEntry['outcome']
  status: number
  error_code: string | null
  policy_ids: string
  reason: string | null
  request_digest: string
  latency_ms: number
  prev_hash: string
  hash: string
}

/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL, so an appended audit
 * record survives a crash once `appendAudit` returns. Calls block the event loop for the
 * length of one small transaction.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database
  /** Prepared statements of the key lookups, which run on every request. */
  private readonly statements = new Map<string, Database.Statement>()
  private readonly auditLog: SqliteAuditLog
  /** Approvals, approval holds and first uses, for dual control and anomaly rules. */
  readonly controls: SqliteControls
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

  putKeyVersion(key: KeyVersion): void {
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

  keyVersions(name: string): KeyVersion[] {
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

  listKeys(): KeyVersion[] {
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

  putApplication(app: Application): void {
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

  application(name: string): Application | undefined {
    const row = this.statement('SELECT * FROM applications WHERE name = ?').get(name) as
      ApplicationRow | undefined
    return row === undefined ? undefined : toApplication(row)
  }

  listApplications(): Application[] {
    const rows = this.db
      .prepare('SELECT * FROM applications ORDER BY name')
      .all() as ApplicationRow[]
    return rows.map(toApplication)
  }

  appendAudit(entry: AuditEntry): AuditRecord {
    return this.appendAuditBatch([entry])[0]!
  }

  appendAuditBatch(entries: AuditEntry[]): AuditRecord[] {
    const lastOf = this.statement(
      'SELECT seq, hash FROM audit WHERE node = ? ORDER BY seq DESC LIMIT 1',
    )
    const insert = this.statement(
      `INSERT INTO audit (node, seq, time, principal, cert_serial, source_address,
         decision_id, operation, key_name, key_version, outcome, status, error_code,
         policy_ids, reason, request_digest, latency_ms, prev_hash, hash)
       VALUES (@node, @seq, @time, @principal, @certSerial, @sourceAddress, @decisionId,
         @operation, @key, @keyVersion, @outcome, @status, @errorCode, @policyIds, @reason,
         @requestDigest, @latencyMs, @prevHash, @hash)`,
    )
    return this.db
      .transaction(() => {
        // The chain head of each writer, read once per transaction and advanced in memory.
        const heads = new Map<string, { seq: number; hash: string }>()
        return entries.map((entry) => {
          const last =
            heads.get(entry.node) ??
            (lastOf.get(entry.node) as { seq: number; hash: string } | undefined)
          const seq = (last?.seq ?? 0) + 1
          const prevHash = last?.hash ?? GENESIS_HASH
          const record: AuditRecord = {
            ...entry,
            seq,
            prevHash,
            hash: chainHash(prevHash, seq, entry),
          }
          insert.run({ ...record, policyIds: JSON.stringify(record.policyIds) })
          heads.set(entry.node, { seq, hash: record.hash })
          return record
        })
      })
      .immediate()
  }

  auditRecords(node: string): AuditRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM audit WHERE node = ? ORDER BY seq')
      .all(node) as AuditRow[]
    return rows.map(toAuditRecord)
  }

  auditRecordsAfter(writer: string, afterSeq: number, limit: number): AuditRecord[] {
    return this.auditLog.recordsAfter(writer, afterSeq, limit)
  }

  auditHeads(): AuditHead[] {
    return this.auditLog.heads()
  }

  putAuditCheckpoint(checkpoint: AuditCheckpoint): void {
    this.auditLog.putCheckpoint(checkpoint)
  }

  auditCheckpoints(writer: string): AuditCheckpoint[] {
    return this.auditLog.checkpoints(writer)
  }

  auditWriters(): string[] {
    return this.auditLog.writers()
  }

  putCertificate(certificate: IssuedCertificate): void {
    this.statement(
      `INSERT INTO certificates (serial, app, host, addresses, not_before, not_after,
         key_protection, status, revoked_at, revocation_reason, issued_at)
       VALUES (@serial, @app, @host, @addresses, @notBefore, @notAfter, @keyProtection, @status,
         @revokedAt, @revocationReason, @issuedAt)`,
    ).run({ ...certificate, addresses: JSON.stringify(certificate.addresses) })
  }

  certificate(serial: string): IssuedCertificate | undefined {
    const row = this.statement('SELECT * FROM certificates WHERE serial = ?').get(serial) as
      CertificateRow | undefined
    return row === undefined ? undefined : toCertificate(row)
  }

  certificatesOf(app: string): IssuedCertificate[] {
    const rows = this.statement(
      'SELECT * FROM certificates WHERE app = ? ORDER BY not_before, serial',
    ).all(app) as CertificateRow[]
    return rows.map(toCertificate)
  }

  revokeCertificate(serial: string, reason: string, at: string): boolean {
    const result = this.statement(
      `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
       WHERE serial = ? AND status = 'active'`,
    ).run(at, reason, serial)
    return result.changes === 1
  }

  revokedCertificates(now: string): IssuedCertificate[] {
    const rows = this.statement(
      `SELECT * FROM certificates WHERE status = 'revoked' AND not_after > ?
       ORDER BY revoked_at, serial`,
    ).all(now) as CertificateRow[]
    return rows.map(toCertificate)
  }

  putEnrollmentToken(token: EnrollmentToken): void {
    this.statement(
      `INSERT INTO enrollment_tokens (token_hash, app, host, addresses, expires_at, created_at,
         used_at)
       VALUES (@tokenHash, @app, @host, @addresses, @expiresAt, @createdAt, @usedAt)`,
    ).run({ ...token, addresses: JSON.stringify(token.addresses) })
  }

  enrollmentToken(tokenHash: string): EnrollmentToken | undefined {
    const row = this.statement('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(
      tokenHash,
    ) as TokenRow | undefined
    return row === undefined ? undefined : toToken(row)
  }

  redeemEnrollmentToken(tokenHash: string, now: string): TokenRedemption {
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

  recordSerialSeen(app: string, host: string, serial: string, notBefore: string): SerialSighting {
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

  close(): void {
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

function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    node: row.node,
    seq: row.seq,
    time: row.time,
    principal: row.principal,
    certSerial: row.cert_serial,
    sourceAddress: row.source_address,
    decisionId: row.decision_id,
    operation: row.operation,
    key: row.key_name,
    keyVersion: row.key_version,
    outcome: row.outcome,
    status: row.status,
    errorCode: row.error_code,
    policyIds: JSON.parse(row.policy_ids) as string[],
    reason: row.reason,
    requestDigest: row.request_digest,
    latencyMs: row.latency_ms,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}
