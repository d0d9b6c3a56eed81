import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AuditBatcher } from './audit-batcher.js'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { AUDIT_FAULT_ENV, AuditFaultError } from './audit-fault.js'
import { SqliteStore } from './sqlite-store.js'
import type { AuditEntry } from './store.js'

let dir: string
let store: SqliteStore

const entry = (node: string, n: number): AuditEntry => ({
  time: new Date().toISOString(),
  node,
  principal: 'spiffe://hsmgate.demo/app/payments',
  certSerial: null,
  sourceAddress: null,
  decisionId: `d_${n}`,
  operation: 'sign',
  key: 'payments-signing',
  keyVersion: 1,
  outcome: 'ok',
  status: 200,
  errorCode: null,
  policyIds: [],
  reason: null,
  requestDigest: 'ab'.repeat(32),
  latencyMs: 1,
})

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-batch-'))
  store = new SqliteStore(join(dir, 'store.db'))
})

afterEach(async () => {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('audit batcher', () => {
  it('writes concurrent entries in one transaction', async () => {
    const sizes: number[] = []
    const batcher = new AuditBatcher({
      appendAuditBatch: (entries) => {
        sizes.push(entries.length)
        return store.appendAuditBatch(entries)
      },
    })
    const records = await Promise.all(
      Array.from({ length: 50 }, (_, n) => batcher.append(entry(n % 2 ? 'a' : 'b', n))),
    )
    expect(sizes).toEqual([50])
    expect(records.map((r) => r.decisionId)).toEqual(records.map((_, n) => `d_${n}`))
    expect(records.filter((r) => r.node === 'a').map((r) => r.seq)).toEqual(
      Array.from({ length: 25 }, (_, i) => i + 1),
    )
  })

  it('keeps one valid hash chain per writer across batches', async () => {
    const batcher = new AuditBatcher(store)
    await Promise.all([1, 2, 3].map((n) => batcher.append(entry('a', n))))
    await Promise.all([4, 5].map((n) => batcher.append(entry('a', n))))
    let prev = GENESIS_HASH
    const records = await store.auditRecords('a')
    expect(records).toHaveLength(5)
    for (const record of records) {
      expect(record.prevHash).toBe(prev)
      expect(chainHash(record.prevHash, record.seq, record)).toBe(record.hash)
      prev = record.hash
    }
  })

  it('rejects every entry of a failed transaction', async () => {
    const batcher = new AuditBatcher({
      appendAuditBatch: async () => {
        throw new Error('disk full')
      },
    })
    const results = await Promise.allSettled([
      batcher.append(entry('a', 1)),
      batcher.append(entry('a', 2)),
    ])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
  })

  it('batches entries that arrive while a write is in flight', async () => {
    const sizes: number[] = []
    let release: () => void = () => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    const batcher = new AuditBatcher({
      appendAuditBatch: async (entries) => {
        sizes.push(entries.length)
        // The first write waits, as a remote database would, while more entries arrive.
        if (sizes.length === 1) await gate
        return store.appendAuditBatch(entries)
      },
    })
    const first = batcher.append(entry('a', 0))
    await new Promise((resolve) => setImmediate(resolve))
    expect(sizes).toEqual([1])
    const later = Array.from({ length: 5 }, (_, n) => batcher.append(entry('a', n + 1)))
    await new Promise((resolve) => setImmediate(resolve))
    expect(sizes).toEqual([1])
    release()
    const records = await Promise.all([first, ...later])
    expect(sizes).toEqual([1, 5])
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect(records.map((r) => r.decisionId)).toEqual(['d_0', 'd_1', 'd_2', 'd_3', 'd_4', 'd_5'])
  })

  it('writes nothing of a batch whose insert fails', async () => {
    const bad = { ...entry('a', 2), policyIds: undefined as unknown as string[] }
    await expect(
      store.appendAuditBatch([entry('a', 1), { ...bad, status: null as never }]),
    ).rejects.toThrow()
    expect(await store.auditRecords('a')).toEqual([])
  })

  it('fails only listed writers while the fault file exists', async () => {
    const fault = join(dir, 'fault')
    vi.stubEnv(AUDIT_FAULT_ENV, fault)
    try {
      const batcher = new AuditBatcher(store)
      writeFileSync(fault, 'a\n')
      await expect(batcher.append(entry('a', 1))).rejects.toBeInstanceOf(AuditFaultError)
      await expect(batcher.append(entry('b', 2))).resolves.toMatchObject({ seq: 1 })
      writeFileSync(fault, '*')
      await expect(batcher.append(entry('b', 3))).rejects.toBeInstanceOf(AuditFaultError)
      rmSync(fault)
      await expect(batcher.append(entry('a', 4))).resolves.toMatchObject({ seq: 1 })
      expect((await store.auditRecords('a')).map((r) => r.decisionId)).toEqual(['d_4'])
    } finally {
      vi.unstubAllEnvs()
    }
  })
})
