import { spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { copyFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, sqliteFile, type LoadedConfig } from '../../config/load.js'
import { AuditCheckpointer } from '../../crypto-backend/audit/audit-checkpointer.js'
import { openAuditKey, publishAuditPublicKey } from '../../crypto-backend/audit/audit-key.js'
import { auditSettings } from '../../crypto-backend/audit/audit-settings.js'
import { HsmCluster } from '../../crypto-backend/hsm/index.js'
import { chainHash } from '../../store/audit-chain.js'
import { receiptOf, type AuditReceipt } from '../../store/audit-receipt.js'
import { SqliteStore } from '../../store/sqlite-store.js'
import type { AuditEntry, AuditRecord } from '../../store/store.js'
import { CLI, initGateway } from '../helpers/gateway-process.js'
import { captureLogger } from '../helpers/softhsm-env.js'

/**
 * `hsmgate audit verify` and `export` against a store whose records were written by the real
 * store code and checkpointed with the HSM audit key of an `hsmgate init` setup. Each tampering
 * edits the SQLite file directly, as an attacker with write access to it would.
 */

const WRITER = 'node-1'
const AUTHZ = 'node-1/authz'
let dir: string
let config: LoadedConfig
let pristine: string
let records: AuditRecord[]

const entry = (node: string, n: number): AuditEntry => ({
  time: new Date(1_750_000_000_000 + n * 1000).toISOString(),
  node,
  principal: 'spiffe://hsmgate.demo/app/payments',
  certSerial: '5e0a',
  sourceAddress: '127.0.0.1',
  decisionId: `d_${node.replace('/', '_')}_${n}`,
  operation: 'sign',
  key: 'payments-signing',
  keyVersion: 1,
  outcome: 'ok',
  status: 200,
  errorCode: null,
  policyIds: ['own-keys'],
  reason: null,
  requestDigest: 'ab'.repeat(32),
  latencyMs: 1,
})

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'audit', ...args, '--config', config.file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Puts the untampered store back, then applies `tamper` to the file with its own connection. */
function resetStore(tamper?: (db: Database.Database) => void): void {
  const file = sqliteFile(config, 'the audit verify test')
  rmSync(`${file}-wal`, { force: true })
  rmSync(`${file}-shm`, { force: true })
  copyFileSync(pristine, file)
  if (tamper === undefined) return
  const db = new Database(file)
  try {
    tamper(db)
  } finally {
    db.close()
  }
}

const hashOf = (db: Database.Database, writer: string, seq: number): string =>
  (
    db.prepare('SELECT hash FROM audit WHERE node = ? AND seq = ?').get(writer, seq) as {
      hash: string
    }
  ).hash

function insertRecord(db: Database.Database, record: AuditRecord): void {
  db.prepare(
    `INSERT INTO audit (node, seq, time, principal, cert_serial, source_address, decision_id,
       operation, key_name, key_version, outcome, status, error_code, policy_ids, reason,
       request_digest, latency_ms, prev_hash, hash)
     VALUES (@node, @seq, @time, @principal, @certSerial, @sourceAddress, @decisionId,
       @operation, @key, @keyVersion, @outcome, @status, @errorCode, @policyIds, @reason,
       @requestDigest, @latencyMs, @prevHash, @hash)`,
  ).run({ ...record, policyIds: JSON.stringify(record.policyIds) })
}

beforeAll(async () => {
  dir = (await initGateway()).dir
  config = loadConfig(join(dir, 'hsmgate.yaml'))
  const { logger } = captureLogger()
  const cluster = await HsmCluster.open(config.hsm.members, {
    logger,
    environment: config.hsm.environment,
    recheckIntervalMs: 60_000,
  })
  const store = new SqliteStore(sqliteFile(config, 'the audit verify test'))
  try {
    const key = await openAuditKey(cluster, config.node_id, logger)
    publishAuditPublicKey(auditSettings(config).publicKeysFile, key.publicKeyPem)
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: config.node_id,
      everyRecords: 10,
      intervalMs: 3_600_000,
      logger,
    })
    // Checkpoints at seq 10 and 20 of both writers; records 21 to 23 are not yet covered.
    for (const [from, to] of [
      [1, 10],
      [11, 20],
      [21, 23],
    ] as const) {
      const numbers = Array.from({ length: to - from + 1 }, (_, i) => from + i)
      await store.appendAuditBatch(numbers.flatMap((n) => [entry(WRITER, n), entry(AUTHZ, n)]))
      await checkpointer.checkpoint(false)
    }
    records = await store.auditRecords(WRITER)
  } finally {
    await store.close()
    await cluster.close()
  }
  pristine = join(dir, 'pristine.db')
  copyFileSync(sqliteFile(config, 'the audit verify test'), pristine)
})

afterAll(async () => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe('hsmgate audit verify', () => {
  it('accepts an untouched log and reports uncovered records', async () => {
    resetStore()
    const result = await cli(['verify'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(
      `ok ${WRITER}: 23 records verified, newest matching signed checkpoint at seq 20; ` +
        '3 records after it are not yet covered',
    )
    expect(result.stdout).toContain('ok: 2 writers verified')
  })

  const tamperings: [string, (db: Database.Database) => void, string, number][] = [
    [
      'an edited record',
      (db) =>
        db
          .prepare('UPDATE audit SET principal = ? WHERE node = ? AND seq = 7')
          .run('spiffe://hsmgate.demo/app/other', WRITER),
      'does not match its hash',
      7,
    ],
    [
      'a deleted record',
      (db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq = 7').run(WRITER),
      'record 7 is missing',
      7,
    ],
    [
      'an inserted record',
      (db) => {
        db.prepare('UPDATE audit SET seq = seq + 1000 WHERE node = ? AND seq >= 7').run(WRITER)
        db.prepare('UPDATE audit SET seq = seq - 999 WHERE node = ? AND seq >= 1000').run(WRITER)
        const prevHash = hashOf(db, WRITER, 6)
        const forged = { ...entry(WRITER, 7), decisionId: 'd_forged' }
        insertRecord(db, { ...forged, seq: 7, prevHash, hash: chainHash(prevHash, 7, forged) })
      },
      'records 7 to 7 were inserted',
      7,
    ],
    [
      'two reordered records',
      (db) => {
        db.prepare('UPDATE audit SET seq = -1 WHERE node = ? AND seq = 7').run(WRITER)
        db.prepare('UPDATE audit SET seq = 7 WHERE node = ? AND seq = 8').run(WRITER)
        db.prepare('UPDATE audit SET seq = 8 WHERE node = ? AND seq = -1').run(WRITER)
      },
      'record 7 does not link to record 6',
      7,
    ],
    [
      'a truncated chain',
      (db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq > 15').run(WRITER),
      'records 16 to 20 are missing',
      16,
    ],
  ]
  for (const [name, tamper, message, seq] of tamperings) {
    it(`names the first bad record after ${name}`, async () => {
      resetStore(tamper)
      const result = await cli(['verify'])
      expect(result.code).toBe(1)
      expect(result.stdout).toContain(`FAIL ${WRITER} seq ${seq}: `)
      expect(result.stdout).toContain(message)
      expect(result.stdout).toContain(`first bad record: writer ${WRITER} seq ${seq}\n`)
      expect(result.stdout).toContain(`ok ${AUTHZ}: 23 records verified`)
    })
  }

  it('catches a rewrite with recomputed hashes at the checkpoint', async () => {
    resetStore((db) => {
      let prevHash = hashOf(db, WRITER, 11)
      for (const record of records.filter((r) => r.seq >= 12)) {
        const changed = record.seq === 12 ? { ...record, principal: 'spiffe://x/app/y' } : record
        const hash = chainHash(prevHash, record.seq, changed)
        db.prepare(
          'UPDATE audit SET principal = ?, prev_hash = ?, hash = ? WHERE node = ? AND seq = ?',
        ).run(changed.principal, prevHash, hash, WRITER, record.seq)
        prevHash = hash
      }
    })
    const result = await cli(['verify'])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('records 11 to 20 were rewritten with recomputed hashes')
    expect(result.stdout).toContain(`first bad record: writer ${WRITER} seq 11\n`)
  })

  it('cannot see records removed after the newest checkpoint', async () => {
    resetStore((db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq > 21').run(WRITER))
    const result = await cli(['verify'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`ok ${WRITER}: 21 records verified`)
    expect(result.stdout).toContain('1 records after it are not yet covered')
  })

  it('rejects a checkpoint whose head was replaced', async () => {
    resetStore((db) =>
      db
        .prepare('UPDATE audit_checkpoints SET head_hash = ? WHERE writer = ? AND seq = 10')
        .run('00'.repeat(32), AUTHZ),
    )
    const result = await cli(['verify'])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain(`FAIL ${AUTHZ} seq 10: checkpoint at seq 10 by node-1 has an`)
    expect(result.stdout).toContain(`first bad record: writer ${AUTHZ} seq 10\n`)
  })

  it('rejects checkpoints under a key that is not trusted', async () => {
    resetStore()
    const other = join(dir, 'other-key.pem')
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    writeFileSync(other, publicKey.export({ type: 'spki', format: 'pem' }))
    const result = await cli(['verify', '--public-key', other])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('is signed with a key that is not a trusted audit key')
  })

  it('verifies only the requested writer', async () => {
    resetStore((db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq = 3').run(WRITER))
    const result = await cli(['verify', '--writer', AUTHZ, '--json'])
    expect(result.code).toBe(0)
    const report = JSON.parse(result.stdout) as { ok: boolean; writers: { writer: string }[] }
    expect(report.ok).toBe(true)
    expect(report.writers.map((w) => w.writer)).toEqual([AUTHZ])
  })
})

describe('hsmgate audit verify --receipt', () => {
  const receiptJson = (seq: number) => JSON.stringify(receiptOf(records[seq - 1]!))

  it('proves a record under a checkpoint', async () => {
    resetStore()
    const result = await cli(['verify', '--receipt', receiptJson(5)])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`covered: the record at writer ${WRITER} seq 5 is in the log`)
    expect(result.stdout).toContain('under the checkpoint at seq 20, signed by node-1')
  })

  it('reads the receipt from a file', async () => {
    resetStore()
    const file = join(dir, 'receipt.json')
    writeFileSync(file, receiptJson(15))
    const result = await cli(['verify', '--receipt', file])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('under the checkpoint at seq 20')
  })

  it('exits 3 for a record no checkpoint covers yet', async () => {
    resetStore()
    const result = await cli(['verify', '--receipt', receiptJson(22)])
    expect(result.code).toBe(3)
    expect(result.stdout).toContain('not_covered: ')
  })

  it('fails for a record that was edited', async () => {
    resetStore((db) =>
      db.prepare('UPDATE audit SET status = 500 WHERE node = ? AND seq = 5').run(WRITER),
    )
    const result = await cli(['verify', '--receipt', receiptJson(5)])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('does not match its hash')
  })

  it('fails for a receipt whose hash differs', async () => {
    resetStore()
    const receipt = { ...receiptOf(records[4]!), hash: 'ff'.repeat(32) }
    const result = await cli(['verify', '--receipt', JSON.stringify(receipt)])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('has a different hash than the receipt')
  })

  it('fails for a deleted record', async () => {
    resetStore((db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq = 5').run(WRITER))
    const result = await cli(['verify', '--receipt', receiptJson(5)])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain(`the log has no record at writer ${WRITER} seq 5`)
  })

  it('fails when an earlier record under the checkpoint was removed', async () => {
    resetStore((db) => db.prepare('DELETE FROM audit WHERE node = ? AND seq = 2').run(WRITER))
    const result = await cli(['verify', '--receipt', receiptJson(5)])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('is broken at seq 2')
  })

  it('rejects a receipt without a seq naming the field', async () => {
    resetStore()
    const partial: Partial<AuditReceipt> = receiptOf(records[4]!)
    delete partial.seq
    const result = await cli(['verify', '--receipt', JSON.stringify(partial)])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("receipt field 'seq' must be a positive integer")
  })
})

describe('hsmgate audit export', () => {
  it('writes one writer since a seq as JSON lines', async () => {
    resetStore()
    const result = await cli(['export', '--writer', WRITER, '--since', '20'])
    expect(result.code).toBe(0)
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord)
    expect(lines.map((r) => r.seq)).toEqual([21, 22, 23])
    expect(lines[0]).toEqual(records[20])
  })

  it('rejects a negative --since', async () => {
    resetStore()
    const result = await cli(['export', '--since=-1'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--since is '-1'; expected an integer from 0")
  })

  it('follows new records until SIGTERM', async () => {
    resetStore()
    const child = spawn(
      process.execPath,
      [CLI, 'audit', 'export', '--follow', '--since', '23', '--interval', '100', '--dir', '.'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir },
    )
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(stdout).toBe('')

    const store = new SqliteStore(sqliteFile(config, 'the audit verify test'))
    await store.appendAuditBatch([entry(WRITER, 24), entry(AUTHZ, 24)])
    await store.close()
    const deadline = Date.now() + 10_000
    while (stdout.split('\n').length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord)
    expect(lines.map((r) => [r.node, r.seq])).toEqual([
      [WRITER, 24],
      [AUTHZ, 24],
    ])
  })
})
