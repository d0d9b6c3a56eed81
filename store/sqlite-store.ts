import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { sqliteMigrations } from './migrations/sqlite.js'
import type { AuditEntry, AuditRecord, KeyVersion, Store } from './store.js'

interface KeyRow {
  name: string
  version: number
  type: KeyVersion['type']
  cka_id: string
  label: string
  state: KeyVersion['state']
  owner: string
  created_at: string
}

interface AuditRow {
  node: string
  seq: number
  time: string
  principal: string
  decision_id: string
  operation: string
  key_name: string | null
  key_version: number | null
  outcome: AuditEntry['outcome']
  status: number
  error_code: string | null
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

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.db.pragma('busy_timeout = 5000')
    this.migrate()
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
        `INSERT INTO keys (name, version, type, cka_id, label, state, owner, created_at)
         VALUES (@name, @version, @type, @ckaId, @label, @state, @owner, @createdAt)
         ON CONFLICT (name, version) DO UPDATE SET state = excluded.state`,
      )
      .run(key)
  }

  keyVersions(name: string): KeyVersion[] {
    const rows = this.db
      .prepare('SELECT * FROM keys WHERE name = ? ORDER BY version DESC')
      .all(name) as KeyRow[]
    return rows.map(toKeyVersion)
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

  appendAudit(entry: AuditEntry): AuditRecord {
    return this.db
      .transaction(() => {
        const last = this.db
          .prepare('SELECT seq, hash FROM audit WHERE node = ? ORDER BY seq DESC LIMIT 1')
          .get(entry.node) as { seq: number; hash: string } | undefined
        const seq = (last?.seq ?? 0) + 1
        const prevHash = last?.hash ?? GENESIS_HASH
        const record: AuditRecord = {
          ...entry,
          seq,
          prevHash,
          hash: chainHash(prevHash, seq, entry),
        }
        this.db
          .prepare(
            `INSERT INTO audit (node, seq, time, principal, decision_id, operation, key_name,
             key_version, outcome, status, error_code, request_digest, latency_ms, prev_hash, hash)
           VALUES (@node, @seq, @time, @principal, @decisionId, @operation, @key, @keyVersion,
             @outcome, @status, @errorCode, @requestDigest, @latencyMs, @prevHash, @hash)`,
          )
          .run(record)
        return record
      })
      .immediate()
  }

  auditRecords(node: string): AuditRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM audit WHERE node = ? ORDER BY seq')
      .all(node) as AuditRow[]
    return rows.map(toAuditRecord)
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
    createdAt: row.created_at,
  }
}

function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    node: row.node,
    seq: row.seq,
    time: row.time,
    principal: row.principal,
    decisionId: row.decision_id,
    operation: row.operation,
    key: row.key_name,
    keyVersion: row.key_version,
    outcome: row.outcome,
    status: row.status,
    errorCode: row.error_code,
    requestDigest: row.request_digest,
    latencyMs: row.latency_ms,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}
