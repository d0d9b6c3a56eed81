import type Database from 'better-sqlite3'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { toAuditRecord, toCheckpoint, type AuditRow, type CheckpointRow } from './audit-rows.js'
import type { AuditCheckpoint, AuditEntry, AuditHead, AuditRecord } from './store.js'

/**
 * The audit tables of the SQLite store: appending to the writers' hash chains, reading them and
 * their checkpoints. Methods are synchronous; SqliteStore wraps them in its async interface.
 */
export class SqliteAuditLog {
  /** Prepared statements of the append, which runs on every request. */
  private readonly statements = new Map<string, Database.Statement>()

  constructor(private readonly db: Database.Database) {}

  /**
   * Appends entries in one IMMEDIATE transaction, which holds the database write lock from the
   * read of each writer's head to the commit, so concurrent appends from several processes
   * continue the chain without a gap or a fork.
   */
  appendBatch(entries: AuditEntry[]): AuditRecord[] {
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

  records(writer: string): AuditRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM audit WHERE node = ? ORDER BY seq')
      .all(writer) as AuditRow[]
    return rows.map(toAuditRecord)
  }

  recordsAfter(writer: string, afterSeq: number, limit: number): AuditRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM audit WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(writer, afterSeq, limit) as AuditRow[]
    return rows.map(toAuditRecord)
  }

  heads(): AuditHead[] {
    return this.db
      .prepare(
        `SELECT a.node AS writer, a.seq AS seq, a.hash AS hash FROM audit a
         JOIN (SELECT node, MAX(seq) AS seq FROM audit GROUP BY node) last
           ON last.node = a.node AND last.seq = a.seq
         ORDER BY a.node`,
      )
      .all() as AuditHead[]
  }

  putCheckpoint(checkpoint: AuditCheckpoint): void {
    this.db
      .prepare(
        `INSERT INTO audit_checkpoints (writer, seq, head_hash, time, signer, key_id, public_key,
           signature)
         VALUES (@writer, @seq, @headHash, @time, @signer, @keyId, @publicKey, @signature)
         ON CONFLICT (writer, seq, signer) DO NOTHING`,
      )
      .run(checkpoint)
  }

  checkpoints(writer: string): AuditCheckpoint[] {
    const rows = this.db
      .prepare('SELECT * FROM audit_checkpoints WHERE writer = ? ORDER BY seq, signer')
      .all(writer) as CheckpointRow[]
    return rows.map(toCheckpoint)
  }

  writers(): string[] {
    const rows = this.db
      .prepare(
        `SELECT DISTINCT node AS writer FROM audit
         UNION SELECT DISTINCT writer FROM audit_checkpoints ORDER BY writer`,
      )
      .all() as { writer: string }[]
    return rows.map((row) => row.writer)
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql)
    if (statement === undefined) {
      statement = this.db.prepare(sql)
      this.statements.set(sql, statement)
    }
    return statement
  }
}
