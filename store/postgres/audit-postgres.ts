import type pg from 'pg'
import { chainHash, GENESIS_HASH } from '../audit-chain.js'
import type { AuditCheckpoint, AuditEntry, AuditHead, AuditRecord } from '../store.js'
import type { PostgresPool } from './postgres-pool.js'
import { toAuditRecord, toCheckpoint, type AuditRow, type CheckpointRow } from './rows.js'

interface Head {
  seq: number
  hash: string
}

/**
 * Locks the head row of a writer's chain until the transaction ends and returns it. The row is
 * created on the first append from the writer's newest record, or the genesis values. An
 * INSERT ... ON CONFLICT DO UPDATE takes the row lock even when the row exists, so concurrent
 * appends of one writer, from any process, wait here for each other.
 */
const LOCK_HEAD = `
  INSERT INTO audit_heads (writer, seq, hash)
  SELECT $1,
    COALESCE((SELECT seq FROM audit WHERE node = $1 ORDER BY seq DESC LIMIT 1), 0),
    COALESCE((SELECT hash FROM audit WHERE node = $1 ORDER BY seq DESC LIMIT 1), $2)
  ON CONFLICT (writer) DO UPDATE SET writer = excluded.writer
  RETURNING seq, hash`

/** Inserts any number of records in one statement, one array parameter per column. */
const INSERT_RECORDS = `
  INSERT INTO audit (node, seq, time, principal, cert_serial, source_address, decision_id,
    operation, key_name, key_version, outcome, status, error_code, policy_ids, reason,
    request_digest, latency_ms, prev_hash, hash)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::integer[], $11::text[],
    $12::integer[], $13::text[], $14::text[], $15::text[], $16::text[],
    $17::double precision[], $18::text[], $19::text[])`

function columnsOf(records: AuditRecord[]): unknown[][] {
  const pick = <T>(field: (record: AuditRecord) => T): T[] => records.map(field)
  return [
    pick((r) => r.node),
    pick((r) => r.seq),
    pick((r) => r.time),
    pick((r) => r.principal),
    pick((r) => r.certSerial),
    pick((r) => r.sourceAddress),
    pick((r) => r.decisionId),
    pick((r) => r.operation),
    pick((r) => r.key),
    pick((r) => r.keyVersion),
    pick((r) => r.outcome),
    pick((r) => r.status),
    pick((r) => r.errorCode),
    pick((r) => JSON.stringify(r.policyIds)),
    pick((r) => r.reason),
    pick((r) => r.requestDigest),
    pick((r) => r.latencyMs),
    pick((r) => r.prevHash),
    pick((r) => r.hash),
  ]
}

/** The audit chains and their checkpoints in PostgreSQL. */
export class PostgresAuditLog {
  constructor(private readonly pool: PostgresPool) {}

  /**
   * Appends entries in one transaction. The head rows of the batch's writers are locked in
   * name order, so two batches that share writers cannot deadlock.
   */
  appendBatch(entries: AuditEntry[]): Promise<AuditRecord[]> {
    if (entries.length === 0) return Promise.resolve([])
    return this.pool.transaction(async (client) => {
      const heads = await lockHeads(client, entries)
      const records = entries.map((entry) => {
        const head = heads.get(entry.node)!
        const seq = head.seq + 1
        const hash = chainHash(head.hash, seq, entry)
        const record: AuditRecord = { ...entry, seq, prevHash: head.hash, hash }
        heads.set(entry.node, { seq, hash })
        return record
      })
      await client.query(INSERT_RECORDS, columnsOf(records))
      for (const [writer, head] of heads) {
        await client.query('UPDATE audit_heads SET seq = $2, hash = $3 WHERE writer = $1', [
          writer,
          head.seq,
          head.hash,
        ])
      }
      return records
    })
  }

  async records(writer: string): Promise<AuditRecord[]> {
    const rows = await this.pool.query<AuditRow>(
      'SELECT * FROM audit WHERE node = $1 ORDER BY seq',
      [writer],
    )
    return rows.map(toAuditRecord)
  }

  async recordsAfter(writer: string, afterSeq: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.pool.query<AuditRow>(
      'SELECT * FROM audit WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [writer, afterSeq, limit],
    )
    return rows.map(toAuditRecord)
  }

  /** Reads the newest record of each writer that audit_heads lists, one index lookup each. */
  heads(): Promise<AuditHead[]> {
    return this.pool.query<AuditHead>(
      `SELECT h.writer, last.seq, last.hash FROM audit_heads h
       CROSS JOIN LATERAL (SELECT seq, hash FROM audit WHERE node = h.writer
         ORDER BY seq DESC LIMIT 1) last
       ORDER BY h.writer`,
    )
  }

  async putCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
    await this.pool.execute(
      `INSERT INTO audit_checkpoints (writer, seq, head_hash, time, signer, key_id, public_key,
         signature)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (writer, seq, signer) DO NOTHING`,
      [
        checkpoint.writer,
        checkpoint.seq,
        checkpoint.headHash,
        checkpoint.time,
        checkpoint.signer,
        checkpoint.keyId,
        checkpoint.publicKey,
        checkpoint.signature,
      ],
    )
  }

  async checkpoints(writer: string): Promise<AuditCheckpoint[]> {
    const rows = await this.pool.query<CheckpointRow>(
      'SELECT * FROM audit_checkpoints WHERE writer = $1 ORDER BY seq, signer',
      [writer],
    )
    return rows.map(toCheckpoint)
  }

  async writers(): Promise<string[]> {
    const rows = await this.pool.query<{ writer: string }>(
      `SELECT writer FROM audit_heads h WHERE EXISTS (SELECT 1 FROM audit WHERE node = h.writer)
       UNION SELECT writer FROM audit_checkpoints
       ORDER BY writer`,
    )
    return rows.map((row) => row.writer)
  }
}

async function lockHeads(client: pg.PoolClient, entries: AuditEntry[]): Promise<Map<string, Head>> {
  const writers = [...new Set(entries.map((entry) => entry.node))].sort()
  const heads = new Map<string, Head>()
  for (const writer of writers) {
    const result = await client.query<Head>(LOCK_HEAD, [writer, GENESIS_HASH])
    heads.set(writer, result.rows[0]!)
  }
  return heads
}
