import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { sqliteMigrations } from './migrations/sqlite.js'
import { SqliteStore } from './sqlite-store.js'
import type { AuditEntry, KeyVersion } from './store.js'

let dir: string
let store: SqliteStore

const key = (name: string, version: number): KeyVersion => ({
  name,
  version,
  type: 'aes-256',
  ckaId: `${name}-${version}`.padEnd(32, '0'),
  label: `hsmgate:${name}:v${version}`,
  state: 'enabled',
  owner: 'payments',
  tags: ['demo'],
  classification: 'internal',
  createdAt: '2026-12-04T00:00:00.000Z',
})

const entry = (node: string, operation: string): AuditEntry => ({
  time: new Date().toISOString(),
  node,
  principal: 'spiffe://hsmgate.demo/app/payments',
  certSerial: '0a1b',
  sourceAddress: '127.0.0.1',
  decisionId: `d_${operation}`,
  operation,
  key: 'payments-data',
  keyVersion: 1,
  outcome: 'ok',
  status: 200,
  errorCode: null,
  policyIds: ['policy-a'],
  reason: null,
  requestDigest: 'ab'.repeat(32),
  latencyMs: 1.5,
})

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-store-'))
  store = new SqliteStore(join(dir, 'store.db'))
})

afterEach(() => {
  store.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('sqlite store', () => {
  it('returns key versions newest first', () => {
    store.putKeyVersion(key('payments-data', 1))
    store.putKeyVersion(key('payments-data', 2))
    expect(store.keyVersions('payments-data').map((k) => k.version)).toEqual([2, 1])
    expect(store.keyVersions('unknown')).toEqual([])
  })

  it('lists the newest version of each key', () => {
    store.putKeyVersion(key('b-key', 1))
    store.putKeyVersion(key('a-key', 1))
    store.putKeyVersion(key('a-key', 2))
    expect(store.listKeys().map((k) => `${k.name}:${k.version}`)).toEqual(['a-key:2', 'b-key:1'])
  })

  it('chains audit records per node', () => {
    const first = store.appendAudit(entry('node-1', 'sign'))
    const second = store.appendAudit(entry('node-1', 'verify'))
    const other = store.appendAudit(entry('node-2', 'sign'))
    expect(first.seq).toBe(1)
    expect(first.prevHash).toBe(GENESIS_HASH)
    expect(second.prevHash).toBe(first.hash)
    expect(other.seq).toBe(1)
    expect(second.hash).toBe(chainHash(first.hash, 2, second))
  })

  it('stores records whose hashes recompute', () => {
    store.appendAudit(entry('node-1', 'sign'))
    store.appendAudit(entry('node-1', 'decrypt'))
    const records = store.auditRecords('node-1')
    let prev = GENESIS_HASH
    for (const record of records) {
      expect(record.prevHash).toBe(prev)
      expect(chainHash(record.prevHash, record.seq, record)).toBe(record.hash)
      prev = record.hash
    }
  })

  it('stores applications and their suspension', () => {
    const app = {
      name: 'payments',
      team: 'treasury',
      hosts: ['pay-1.example.internal'],
      addresses: ['10.0.0.5'],
      suspended: false,
      createdAt: '2026-12-04T00:00:00.000Z',
    }
    store.putApplication(app)
    expect(store.application('payments')).toEqual(app)
    store.putApplication({ ...app, suspended: true })
    expect(store.application('payments')?.suspended).toBe(true)
    expect(store.application('unknown')).toBeUndefined()
    expect(store.listApplications().map((a) => a.name)).toEqual(['payments'])
  })

  it('keeps tags and policy ids', () => {
    store.putKeyVersion(key('payments-data', 1))
    expect(store.keyVersions('payments-data')[0]?.tags).toEqual(['demo'])
    store.appendAudit(entry('node-1', 'sign'))
    expect(store.auditRecords('node-1')[0]?.policyIds).toEqual(['policy-a'])
  })

  it('revokes a certificate once and lists it for the CRL', () => {
    const cert = {
      serial: '0a1b2c',
      app: 'payments',
      host: 'pay-1',
      addresses: ['127.0.0.1'],
      notBefore: '2026-12-04T00:00:00.000Z',
      notAfter: '2026-12-04T01:00:00.000Z',
      keyProtection: 'software' as const,
      status: 'active' as const,
      revokedAt: null,
      revocationReason: null,
      issuedAt: '2026-12-04T00:00:00.000Z',
    }
    store.putCertificate(cert)
    expect(store.certificate('0a1b2c')).toEqual(cert)
    expect(store.revokeCertificate('0a1b2c', 'keyCompromise', '2026-12-04T00:30:00.000Z')).toBe(
      true,
    )
    expect(store.revokeCertificate('0a1b2c', 'keyCompromise', '2026-12-04T00:31:00.000Z')).toBe(
      false,
    )
    expect(store.revokeCertificate('ffff', 'keyCompromise', '2026-12-04T00:31:00.000Z')).toBe(false)
    expect(store.revokedCertificates('2026-12-04T00:45:00.000Z').map((c) => c.serial)).toEqual([
      '0a1b2c',
    ])
    expect(store.revokedCertificates('2026-12-04T02:00:00.000Z')).toEqual([])
    expect(store.certificatesOf('payments')[0]?.status).toBe('revoked')
  })

  it('redeems an enrollment token once', () => {
    store.putEnrollmentToken({
      tokenHash: 'h1',
      app: 'payments',
      host: 'pay-1',
      addresses: [],
      expiresAt: '2026-12-04T01:00:00.000Z',
      createdAt: '2026-12-04T00:00:00.000Z',
      usedAt: null,
    })
    const now = '2026-12-04T00:10:00.000Z'
    expect(store.redeemEnrollmentToken('h1', now).ok).toBe(true)
    expect(store.redeemEnrollmentToken('h1', now)).toEqual({ ok: false, reason: 'used' })
    expect(store.redeemEnrollmentToken('h2', now)).toEqual({ ok: false, reason: 'unknown' })
  })

  it('rejects an expired enrollment token', () => {
    store.putEnrollmentToken({
      tokenHash: 'h3',
      app: 'payments',
      host: 'pay-1',
      addresses: [],
      expiresAt: '2026-12-04T01:00:00.000Z',
      createdAt: '2026-12-04T00:00:00.000Z',
      usedAt: null,
    })
    expect(store.redeemEnrollmentToken('h3', '2026-12-04T01:00:00.000Z')).toEqual({
      ok: false,
      reason: 'expired',
    })
  })

  it('reports an older serial after a newer one was seen', () => {
    expect(store.recordSerialSeen('payments', 'pay-1', 'aa', '2026-12-04T00:00:00.000Z')).toBe(
      'newest',
    )
    expect(store.recordSerialSeen('payments', 'pay-1', 'bb', '2026-12-04T00:40:00.000Z')).toBe(
      'newest',
    )
    expect(store.recordSerialSeen('payments', 'pay-1', 'bb', '2026-12-04T00:40:00.000Z')).toBe(
      'newest',
    )
    expect(store.recordSerialSeen('payments', 'pay-1', 'aa', '2026-12-04T00:00:00.000Z')).toBe(
      'older',
    )
    expect(store.recordSerialSeen('payments', 'pay-2', 'aa', '2026-12-04T00:00:00.000Z')).toBe(
      'newest',
    )
  })

  it('applies migrations once across reopenings', () => {
    store.close()
    store = new SqliteStore(join(dir, 'store.db'))
    const db = new Database(join(dir, 'store.db'), { readonly: true })
    const versions = db.prepare('SELECT version FROM schema_migrations').all()
    db.close()
    expect(versions).toEqual(sqliteMigrations.map((_, index) => ({ version: index + 1 })))
  })
})
