import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { chainHash, GENESIS_HASH } from '../../store/audit-chain.js'
import type {
  Approval,
  AuditEntry,
  AuditRecord,
  EnrollmentToken,
  IssuedCertificate,
  KeyVersion,
  Store,
} from '../../store/store.js'

/** One database for one test: every `open` returns a new store instance on it. */
export interface StoreHarness {
  /** Opens another store on the same database, with its own connection or pool. */
  open(): Promise<Store>
  /** Returns the versions in schema_migrations, in order. */
  migrationVersions(): Promise<number[]>
  /** Number of migrations the implementation defines. */
  readonly migrationCount: number
  /** Removes the database; called after every store of the test is closed. */
  cleanup(): Promise<void>
}

const T0 = '2026-12-04T00:00:00.000Z'

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
  createdAt: T0,
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

const certificate = (serial: string, notBefore: string): IssuedCertificate => ({
  serial,
  app: 'payments',
  host: 'pay-1',
  addresses: ['127.0.0.1'],
  notBefore,
  notAfter: '2026-12-04T01:00:00.000Z',
  keyProtection: 'software',
  status: 'active',
  revokedAt: null,
  revocationReason: null,
  issuedAt: notBefore,
})

const token = (tokenHash: string): EnrollmentToken => ({
  tokenHash,
  app: 'payments',
  host: 'pay-1',
  addresses: [],
  expiresAt: '2026-12-04T01:00:00.000Z',
  createdAt: T0,
  usedAt: null,
})

const approval = (id: string, required: number, uses = 1): Omit<Approval, 'votes'> => ({
  id,
  requester: 'spiffe://hsmgate.demo/app/payments',
  operation: 'destroy',
  key: 'payments-data',
  paramsDigest: 'cd'.repeat(32),
  quota: null,
  extra: 0,
  group: 'security-officers',
  required,
  uses,
  usesLeft: uses,
  status: 'pending',
  createdAt: T0,
  expiresAt: '2026-12-04T02:00:00.000Z',
})

const grantMatch = {
  requester: 'spiffe://hsmgate.demo/app/payments',
  operation: 'destroy',
  key: 'payments-data',
  paramsDigest: 'cd'.repeat(32),
}

/** Checks that a writer's records form one chain with seq 1..n and recomputable hashes. */
function expectGaplessChain(records: AuditRecord[]): void {
  let prev = GENESIS_HASH
  records.forEach((record, index) => {
    expect(record.seq).toBe(index + 1)
    expect(record.prevHash).toBe(prev)
    expect(chainHash(record.prevHash, record.seq, record)).toBe(record.hash)
    prev = record.hash
  })
}

/**
 * Defines the behaviour every Store implementation must have, as one describe block per
 * area. `createHarness` runs before each test and must return an empty database.
 */
export function storeSuite(name: string, createHarness: () => Promise<StoreHarness>): void {
  describe(name, () => {
    let harness: StoreHarness
    let store: Store
    const opened: Store[] = []

    const open = async (): Promise<Store> => {
      const instance = await harness.open()
      opened.push(instance)
      return instance
    }

    beforeEach(async () => {
      harness = await createHarness()
      store = await open()
    })

    afterEach(async () => {
      for (const instance of opened.splice(0)) await instance.close()
      await harness.cleanup()
    })

    describe('keys and applications', () => {
      it('returns key versions newest first', async () => {
        await store.putKeyVersion(key('payments-data', 1))
        await store.putKeyVersion(key('payments-data', 2))
        const versions = await store.keyVersions('payments-data')
        expect(versions.map((k) => k.version)).toEqual([2, 1])
        expect(await store.keyVersions('unknown')).toEqual([])
      })

      it('lists the newest version of each key', async () => {
        await store.putKeyVersion(key('b-key', 1))
        await store.putKeyVersion(key('a-key', 1))
        await store.putKeyVersion(key('a-key', 2))
        await store.putKeyVersion(key('B-key', 1))
        const keys = await store.listKeys()
        expect(keys.map((k) => `${k.name}:${k.version}`)).toEqual(['B-key:1', 'a-key:2', 'b-key:1'])
      })

      it('updates only state, tags and classification of a version', async () => {
        await store.putKeyVersion(key('payments-data', 1))
        await store.putKeyVersion({
          ...key('payments-data', 1),
          label: 'changed',
          state: 'disabled',
          tags: ['a', 'b'],
          classification: 'restricted',
        })
        expect(await store.keyVersions('payments-data')).toEqual([
          {
            ...key('payments-data', 1),
            state: 'disabled',
            tags: ['a', 'b'],
            classification: 'restricted',
          },
        ])
      })

      it('stores applications and their suspension', async () => {
        const app = {
          name: 'payments',
          team: 'treasury',
          hosts: ['pay-1.example.internal'],
          addresses: ['10.0.0.5'],
          suspended: false,
          createdAt: T0,
        }
        await store.putApplication(app)
        expect(await store.application('payments')).toEqual(app)
        await store.putApplication({
          ...app,
          suspended: true,
          createdAt: '2027-01-01T00:00:00.000Z',
        })
        expect(await store.application('payments')).toEqual({ ...app, suspended: true })
        expect(await store.application('unknown')).toBeUndefined()
        expect((await store.listApplications()).map((a) => a.name)).toEqual(['payments'])
      })

      it('keeps tags and policy ids', async () => {
        await store.putKeyVersion(key('payments-data', 1))
        expect((await store.keyVersions('payments-data'))[0]?.tags).toEqual(['demo'])
        await store.appendAudit(entry('node-1', 'sign'))
        expect((await store.auditRecords('node-1'))[0]?.policyIds).toEqual(['policy-a'])
      })
    })

    describe('audit', () => {
      it('chains audit records per node', async () => {
        const first = await store.appendAudit(entry('node-1', 'sign'))
        const second = await store.appendAudit(entry('node-1', 'verify'))
        const other = await store.appendAudit(entry('node-2', 'sign'))
        expect(first.seq).toBe(1)
        expect(first.prevHash).toBe(GENESIS_HASH)
        expect(second.prevHash).toBe(first.hash)
        expect(other.seq).toBe(1)
        expect(second.hash).toBe(chainHash(first.hash, 2, second))
      })

      it('stores records whose hashes recompute', async () => {
        await store.appendAudit(entry('node-1', 'sign'))
        await store.appendAudit({ ...entry('node-1', 'decrypt'), latencyMs: 0.1 + 0.2 })
        const records = await store.auditRecords('node-1')
        expect(records).toHaveLength(2)
        expectGaplessChain(records)
      })

      it('appends a batch across writers in order', async () => {
        await store.appendAudit(entry('node-b', 'sign'))
        const batch = await store.appendAuditBatch([
          entry('node-b', 'verify'),
          entry('node-a', 'sign'),
          entry('node-b', 'decrypt'),
        ])
        expect(batch.map((r) => `${r.node}:${r.seq}`)).toEqual(['node-b:2', 'node-a:1', 'node-b:3'])
        expect(await store.appendAuditBatch([])).toEqual([])
        expectGaplessChain(await store.auditRecords('node-b'))
        const after = await store.auditRecordsAfter('node-b', 1, 1)
        expect(after.map((r) => r.operation)).toEqual(['verify'])
        expect(await store.auditHeads()).toEqual([
          { writer: 'node-a', seq: 1, hash: batch[1]!.hash },
          { writer: 'node-b', seq: 3, hash: batch[2]!.hash },
        ])
      })

      it('stores a checkpoint once and lists writers', async () => {
        await store.appendAudit(entry('node-1', 'sign'))
        const checkpoint = {
          writer: 'node-0',
          seq: 5,
          headHash: 'ef'.repeat(32),
          time: '2026-12-04T00:00:00.000Z',
          signer: 'backend-1',
          keyId: '0a',
          publicKey: '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n',
          signature: 'c2ln',
        }
        await store.putAuditCheckpoint(checkpoint)
        await store.putAuditCheckpoint({ ...checkpoint, signature: 'b3RoZXI=' })
        await store.putAuditCheckpoint({ ...checkpoint, signer: 'backend-0' })
        const stored = await store.auditCheckpoints('node-0')
        expect(stored.map((c) => `${c.signer}:${c.signature}`)).toEqual([
          'backend-0:c2ln',
          'backend-1:c2ln',
        ])
        expect(stored[1]).toEqual(checkpoint)
        expect(await store.auditWriters()).toEqual(['node-0', 'node-1'])
      })
    })

    describe('certificates and tokens', () => {
      it('revokes a certificate once and lists it for the CRL', async () => {
        const cert = certificate('0a1b2c', T0)
        await store.putCertificate(cert)
        expect(await store.certificate('0a1b2c')).toEqual(cert)
        expect(
          await store.revokeCertificate('0a1b2c', 'keyCompromise', '2026-12-04T00:30:00.000Z'),
        ).toBe(true)
        expect(
          await store.revokeCertificate('0a1b2c', 'keyCompromise', '2026-12-04T00:31:00.000Z'),
        ).toBe(false)
        expect(
          await store.revokeCertificate('ffff', 'keyCompromise', '2026-12-04T00:31:00.000Z'),
        ).toBe(false)
        const crl = await store.revokedCertificates('2026-12-04T00:45:00.000Z')
        expect(crl.map((c) => c.serial)).toEqual(['0a1b2c'])
        expect(crl[0]?.revokedAt).toBe('2026-12-04T00:30:00.000Z')
        expect(await store.revokedCertificates('2026-12-04T02:00:00.000Z')).toEqual([])
        expect((await store.certificatesOf('payments'))[0]?.status).toBe('revoked')
      })

      it('rejects a second certificate with the same serial', async () => {
        await store.putCertificate(certificate('0a', T0))
        await expect(store.putCertificate(certificate('0a', T0))).rejects.toThrow()
      })

      it('orders certificates by notBefore', async () => {
        await store.putCertificate(certificate('03', '2026-12-04T00:20:00.000Z'))
        await store.putCertificate(certificate('01', '2026-12-04T00:10:00.000Z'))
        await store.putCertificate(certificate('02', '2026-12-04T00:10:00.000Z'))
        const serials = (await store.certificatesOf('payments')).map((c) => c.serial)
        expect(serials).toEqual(['01', '02', '03'])
      })

      it('redeems an enrollment token once', async () => {
        await store.putEnrollmentToken(token('h1'))
        const now = '2026-12-04T00:10:00.000Z'
        expect(await store.redeemEnrollmentToken('h1', now)).toEqual({
          ok: true,
          token: { ...token('h1'), usedAt: now },
        })
        expect(await store.redeemEnrollmentToken('h1', now)).toEqual({ ok: false, reason: 'used' })
        expect(await store.redeemEnrollmentToken('h2', now)).toEqual({
          ok: false,
          reason: 'unknown',
        })
        expect((await store.enrollmentToken('h1'))?.usedAt).toBe(now)
      })

      it('rejects an expired enrollment token', async () => {
        await store.putEnrollmentToken(token('h3'))
        expect(await store.redeemEnrollmentToken('h3', '2026-12-04T01:00:00.000Z')).toEqual({
          ok: false,
          reason: 'expired',
        })
        expect((await store.enrollmentToken('h3'))?.usedAt).toBeNull()
      })

      it('reports an older serial after a newer one was seen', async () => {
        const seen = (serial: string, host: string, notBefore: string) =>
          store.recordSerialSeen('payments', host, serial, notBefore)
        expect(await seen('aa', 'pay-1', T0)).toBe('newest')
        expect(await seen('bb', 'pay-1', '2026-12-04T00:40:00.000Z')).toBe('newest')
        expect(await seen('bb', 'pay-1', '2026-12-04T00:40:00.000Z')).toBe('newest')
        expect(await seen('aa', 'pay-1', T0)).toBe('older')
        expect(await seen('aa', 'pay-2', T0)).toBe('newest')
      })
    })

    describe('dual control records', () => {
      it('grants an approval at the required votes', async () => {
        await store.controls.createApproval(approval('a1', 2))
        const vote = (approver: string) =>
          store.controls.vote('a1', { approver, vote: 'approve', at: T0 }, (current) =>
            current.votes.some((v) => v.approver === approver) ? 'already_voted' : undefined,
          )
        const first = await vote('alice')
        expect('error' in first ? first.error : first.status).toBe('pending')
        expect(await vote('alice')).toEqual({ error: 'already_voted' })
        const second = await vote('bob')
        expect('error' in second ? second.error : second.status).toBe('granted')
        const stored = await store.controls.approval('a1')
        expect(stored?.votes.map((v) => v.approver)).toEqual(['alice', 'bob'])
        const unknown = await store.controls.vote(
          'nope',
          { approver: 'x', vote: 'deny', at: T0 },
          () => undefined,
        )
        expect(unknown).toEqual({ error: 'approval_not_found' })
      })

      it('denies an approval on a deny vote', async () => {
        await store.controls.createApproval(approval('a2', 2))
        const result = await store.controls.vote(
          'a2',
          { approver: 'carol', vote: 'deny', at: T0 },
          () => undefined,
        )
        expect('error' in result ? result.error : result.status).toBe('denied')
        const listed = await store.controls.listApprovals({
          requester: approval('a2', 2).requester,
          groups: [],
          now: T0,
          limit: 10,
        })
        expect(listed.map((a) => a.id)).toEqual(['a2'])
      })

      it('lists only visible requests, pending first', async () => {
        const at = (minute: number) => `2026-12-04T00:${String(minute).padStart(2, '0')}:00.000Z`
        const own = 'spiffe://hsmgate.demo/app/payments'
        const other = 'spiffe://hsmgate.demo/app/reporting'
        await store.controls.createApproval({ ...approval('l1', 1), createdAt: at(1) })
        await store.controls.createApproval({
          ...approval('l2', 1),
          status: 'granted',
          createdAt: at(5),
        })
        await store.controls.createApproval({
          ...approval('l3', 1),
          requester: other,
          group: 'auditors',
          createdAt: at(9),
        })
        await store.controls.createApproval({
          ...approval('l4', 1),
          requester: other,
          group: 'custodians',
          createdAt: at(7),
        })
        const list = async (requester: string, groups: string[], offset = 0) =>
          (
            await store.controls.listApprovals({ requester, groups, now: T0, limit: 2, offset })
          ).map((a) => a.id)
        expect(await list(own, [])).toEqual(['l1', 'l2'])
        expect(await list('spiffe://hsmgate.demo/person/alice', ['security-officers'])).toEqual([
          'l1',
          'l2',
        ])
        expect(await list('x', ['custodians', 'security-officers'])).toEqual(['l4', 'l1'])
        expect(await list('x', ['custodians', 'security-officers'], 2)).toEqual(['l2'])
        expect(await list(other, [])).toEqual(['l3', 'l4'])
        expect(await list('x', [])).toEqual([])
      })

      it('caps the pending requests of a requester', async () => {
        const limit = { maxPending: 2, now: T0 }
        expect(await store.controls.createApproval(approval('c1', 1), limit)).toBe(true)
        expect(await store.controls.createApproval(approval('c2', 1), limit)).toBe(true)
        expect(await store.controls.createApproval(approval('c3', 1), limit)).toBe(false)
        expect(await store.controls.approval('c3')).toBeUndefined()
        const other = { ...approval('c4', 1), requester: 'spiffe://hsmgate.demo/app/reporting' }
        expect(await store.controls.createApproval(other, limit)).toBe(true)
        // Expired and decided requests no longer count.
        const later = { maxPending: 2, now: '2026-12-04T02:00:00.000Z' }
        expect(await store.controls.createApproval(approval('c5', 1), later)).toBe(true)
      })

      it('uses a grant until its uses are gone', async () => {
        await store.controls.createApproval({ ...approval('g1', 1, 2), status: 'granted' })
        const now = '2026-12-04T00:30:00.000Z'
        expect((await store.controls.peekGrant(grantMatch, now))?.usesLeft).toBe(2)
        const first = await store.controls.useGrant(grantMatch, now)
        expect(first?.usesLeft).toBe(2)
        expect(first?.status).toBe('granted')
        const second = await store.controls.useGrant(grantMatch, now)
        expect(second?.usesLeft).toBe(1)
        expect(await store.controls.useGrant(grantMatch, now)).toBeUndefined()
        expect((await store.controls.approval('g1'))?.status).toBe('used')
        expect(await store.controls.useGrant({ ...grantMatch, key: null }, now)).toBeUndefined()
      })

      it('ignores an expired grant', async () => {
        await store.controls.createApproval({ ...approval('g2', 1), status: 'granted' })
        const after = '2026-12-04T02:00:00.000Z'
        expect(await store.controls.peekGrant(grantMatch, after)).toBeUndefined()
        expect(await store.controls.useGrant(grantMatch, after)).toBeUndefined()
      })

      it('sums granted quota extensions', async () => {
        const extension = {
          ...approval('q1', 1),
          operation: 'quota-extension',
          quota: 'decrypts',
          extra: 50,
          status: 'granted' as const,
        }
        await store.controls.createApproval(extension)
        await store.controls.createApproval({ ...extension, id: 'q2', extra: 25 })
        await store.controls.createApproval({ ...extension, id: 'q3', status: 'pending' })
        const now = '2026-12-04T00:30:00.000Z'
        expect(await store.controls.quotaExtension(extension.requester, 'decrypts', now)).toBe(75)
        expect(await store.controls.quotaExtension(extension.requester, 'signs', now)).toBe(0)
      })

      it('records a first use once and keeps the first hold', async () => {
        expect(await store.controls.recordFirstUse('payments', 'key', 'k1', T0)).toBe(true)
        expect(await store.controls.recordFirstUse('payments', 'key', 'k1', T0)).toBe(false)
        const hold = { app: 'payments', rule: 'new-key', group: 'ops', required: 1, createdAt: T0 }
        await store.controls.putHold(hold)
        await store.controls.putHold({ ...hold, rule: 'other' })
        expect(await store.controls.hold('payments')).toEqual(hold)
        expect(await store.controls.clearHold('payments')).toBe(true)
        expect(await store.controls.clearHold('payments')).toBe(false)
        expect(await store.controls.hold('payments')).toBeUndefined()
      })
    })

    describe('tpm records', () => {
      const limits = { perSource: 2, perPrefix: { prefix: 'ip:', max: 3 } }

      it('limits outstanding nonces per source and prefix', async () => {
        const put = (hash: string, source: string) =>
          store.tpm.putNonce(hash, T0, '2026-12-04T00:05:00.000Z', source, limits)
        expect(await put('n1', 'ip:10.0.0.1')).toEqual({ ok: true })
        expect(await put('n2', 'ip:10.0.0.1')).toEqual({ ok: true })
        expect(await put('n3', 'ip:10.0.0.1')).toEqual({ ok: false, reason: 'source_limit' })
        expect(await put('n4', 'ip:10.0.0.2')).toEqual({ ok: true })
        expect(await put('n5', 'ip:10.0.0.3')).toEqual({ ok: false, reason: 'total_limit' })
        expect(await put('n6', 'host:a')).toEqual({ ok: true })
        expect(await store.tpm.nonceCount()).toBe(4)
      })

      it('redeems a nonce once and deletes expired ones', async () => {
        await store.tpm.putNonce('n1', T0, '2026-12-04T00:05:00.000Z', 'ip:a', limits)
        await store.tpm.putNonce('n2', T0, '2026-12-04T00:01:00.000Z', 'ip:a', limits)
        const now = '2026-12-04T00:02:00.000Z'
        expect(await store.tpm.redeemNonce('n1', now)).toEqual({ ok: true })
        expect(await store.tpm.redeemNonce('n1', now)).toEqual({ ok: false, reason: 'used' })
        expect(await store.tpm.redeemNonce('n2', now)).toEqual({ ok: false, reason: 'expired' })
        expect(await store.tpm.redeemNonce('n9', now)).toEqual({ ok: false, reason: 'unknown' })
        // n2 expired unused, so the next put deletes it; n1 was used and stays for a day.
        await store.tpm.putNonce('n3', now, '2026-12-04T00:07:00.000Z', 'ip:a', limits)
        expect(await store.tpm.nonceCount()).toBe(2)
        await store.tpm.putNonce(
          'n4',
          '2026-12-05T01:00:00.000Z',
          '2026-12-05T01:05:00.000Z',
          'ip:a',
          limits,
        )
        expect(await store.tpm.nonceCount()).toBe(1)
      })

      it('takes a challenge once, expired or not', async () => {
        const challenge = {
          id: 'c1',
          secretHash: 'aa'.repeat(32),
          akName: '000b' + 'bb'.repeat(32),
          nonceHash: 'cc'.repeat(32),
          ekFingerprint: 'dd'.repeat(32),
          issuedAt: T0,
          expiresAt: '2026-12-04T00:05:00.000Z',
        }
        await store.tpm.putChallenge(challenge)
        await store.tpm.putChallenge({ ...challenge, id: 'c2' })
        const now = '2026-12-04T00:01:00.000Z'
        expect(await store.tpm.takeChallenge('c1', now)).toEqual({ ok: true, challenge })
        expect(await store.tpm.takeChallenge('c1', now)).toEqual({ ok: false, reason: 'used' })
        const late = '2026-12-04T00:06:00.000Z'
        expect(await store.tpm.takeChallenge('c2', late)).toEqual({ ok: false, reason: 'expired' })
        expect(await store.tpm.takeChallenge('c2', now)).toEqual({ ok: false, reason: 'used' })
        expect(await store.tpm.takeChallenge('c3', now)).toEqual({ ok: false, reason: 'unknown' })
      })

      it('registers, moves and removes attestation keys', async () => {
        const ak = { name: '000b01', host: 'pay-1', publicArea: 'AAEC', registeredAt: T0 }
        await store.tpm.putAttestationKey(ak)
        await store.tpm.putAttestationKey({ ...ak, host: 'pay-2' })
        expect(await store.tpm.attestationKey('000b01')).toEqual({ ...ak, host: 'pay-2' })
        expect(await store.tpm.removeAttestationKey('000b01')).toBe(true)
        expect(await store.tpm.removeAttestationKey('000b01')).toBe(false)
        expect(await store.tpm.attestationKey('000b01')).toBeUndefined()
      })
    })

    describe('migrations', () => {
      it('applies migrations once across reopenings', async () => {
        await store.close()
        opened.splice(opened.indexOf(store), 1)
        store = await open()
        const expected = Array.from({ length: harness.migrationCount }, (_, i) => i + 1)
        expect(await harness.migrationVersions()).toEqual(expected)
      })

      it('migrates once when two stores open at the same time', async () => {
        const fresh = await createHarness()
        try {
          const both = await Promise.all([fresh.open(), fresh.open()])
          const expected = Array.from({ length: fresh.migrationCount }, (_, i) => i + 1)
          expect(await fresh.migrationVersions()).toEqual(expected)
          for (const instance of both) await instance.close()
        } finally {
          await fresh.cleanup()
        }
      })
    })

    describe('two store instances at once', () => {
      it('keep one gapless audit chain per writer', async () => {
        const other = await open()
        const batches = Array.from({ length: 40 }, (_, i) => {
          const writerStore = i % 2 === 0 ? store : other
          const entries = Array.from({ length: 5 }, (_, j) => entry('node-1', `op-${i}-${j}`))
          return writerStore.appendAuditBatch(entries)
        })
        const results = await Promise.all(batches)
        const records = await store.auditRecords('node-1')
        expect(records).toHaveLength(200)
        expectGaplessChain(records)
        // Each batch's records are consecutive, because one transaction appended them.
        for (const batch of results) {
          expect(batch.map((r) => r.seq - batch[0]!.seq)).toEqual([0, 1, 2, 3, 4])
        }
      })

      it('let exactly one redeem a token', async () => {
        const other = await open()
        const now = '2026-12-04T00:10:00.000Z'
        for (let i = 0; i < 10; i++) await store.putEnrollmentToken(token(`t${i}`))
        const attempts = Array.from({ length: 10 }, (_, i) => [
          store.redeemEnrollmentToken(`t${i}`, now),
          other.redeemEnrollmentToken(`t${i}`, now),
          store.redeemEnrollmentToken(`t${i}`, now),
        ])
        for (const results of await Promise.all(attempts.map((a) => Promise.all(a)))) {
          expect(results.filter((result) => result.ok)).toHaveLength(1)
          expect(results.filter((result) => !result.ok && result.reason === 'used')).toHaveLength(2)
        }
      })

      it('count both of two concurrent votes', async () => {
        const other = await open()
        const ids = Array.from({ length: 10 }, (_, i) => `v${i}`)
        for (const id of ids) await store.controls.createApproval(approval(id, 2))
        await Promise.all(
          ids.flatMap((id) => [
            store.controls.vote(
              id,
              { approver: 'alice', vote: 'approve', at: T0 },
              () => undefined,
            ),
            other.controls.vote(id, { approver: 'bob', vote: 'approve', at: T0 }, () => undefined),
          ]),
        )
        for (const id of ids) {
          const stored = await store.controls.approval(id)
          expect(stored?.votes).toHaveLength(2)
          expect(stored?.status).toBe('granted')
        }
      })

      it('keep the pending approval cap', async () => {
        const other = await open()
        const limit = { maxPending: 3, now: T0 }
        const created = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? store : other).controls.createApproval(approval(`p${i}`, 1), limit),
          ),
        )
        expect(created.filter(Boolean)).toHaveLength(3)
      })

      it('hand out each grant use once', async () => {
        const other = await open()
        await store.controls.createApproval({ ...approval('g3', 1, 3), status: 'granted' })
        const now = '2026-12-04T00:30:00.000Z'
        const uses = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? store : other).controls.useGrant(grantMatch, now),
          ),
        )
        const taken = uses.filter((use) => use !== undefined)
        expect(taken).toHaveLength(3)
        expect(taken.map((use) => use.usesLeft).sort()).toEqual([1, 2, 3])
        expect((await store.controls.approval('g3'))?.status).toBe('used')
      })

      it('record a first use for exactly one caller', async () => {
        const other = await open()
        const firsts = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 === 0 ? store : other).controls.recordFirstUse('payments', 'key', 'k9', T0),
          ),
        )
        expect(firsts.filter(Boolean)).toHaveLength(1)
      })

      it('keep the nonce limit', async () => {
        const other = await open()
        const limits = { perSource: 5 }
        const puts = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? store : other).tpm.putNonce(
              `nonce-${i}`,
              T0,
              '2026-12-04T00:05:00.000Z',
              'ip:10.0.0.9',
              limits,
            ),
          ),
        )
        expect(puts.filter((put) => put.ok)).toHaveLength(5)
        expect(await store.tpm.nonceCount()).toBe(5)
      })

      it('keep the newest serial when serials race', async () => {
        const other = await open()
        const later = '2026-12-04T00:40:00.000Z'
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            i % 2 === 0
              ? store.recordSerialSeen('payments', 'pay-1', 'old', T0)
              : other.recordSerialSeen('payments', 'pay-1', 'new', later),
          ),
        )
        expect(await store.recordSerialSeen('payments', 'pay-1', 'old', T0)).toBe('older')
        expect(await other.recordSerialSeen('payments', 'pay-1', 'new', later)).toBe('newest')
      })
    })
  })
}
