import { execFileSync } from 'node:child_process'
import { verify } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  captureLogger,
  createSofthsmEnv,
  findAll,
  withToken,
  type SofthsmTestEnv,
} from '../../test/helpers/softhsm-env.js'
import { checkCheckpoint, checkpointText, TrustedAuditKeys } from '../../store/audit-checkpoint.js'
import { verifyWriter } from '../../store/audit-verify.js'
import { SqliteStore } from '../../store/sqlite-store.js'
import type { AuditEntry } from '../../store/store.js'
import { HsmCluster } from '../hsm/index.js'
import { AuditCheckpointer, CHAIN_MISMATCH_ALERT } from './audit-checkpointer.js'
import { auditKeyId, openAuditKey, publishAuditPublicKey, type AuditKey } from './audit-key.js'

let env: SofthsmTestEnv
let cluster: HsmCluster
let key: AuditKey
const { logger, lines } = captureLogger()

const entry = (node: string, n: number): AuditEntry => ({
  time: new Date().toISOString(),
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

function newStore(name: string): SqliteStore {
  return new SqliteStore(join(env.dir, `${name}.db`))
}

beforeAll(async () => {
  env = await createSofthsmEnv(['audit-a', 'audit-b'])
  cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
    logger,
    recheckIntervalMs: 60_000,
  })
  await cluster.provisionClusterKek({
    soPins: { 'hsm-a': env.tokens[0]!.soPin, 'hsm-b': env.tokens[1]!.soPin },
  })
  key = await openAuditKey(cluster, 'node-1', logger)
})

afterAll(async () => {
  await cluster?.close()
  env?.cleanup()
})

describe('audit key', () => {
  it('is found again on the next start', async () => {
    const again = await openAuditKey(cluster, 'node-1', logger)
    expect(again.keyId).toBe(key.keyId)
    expect(again.publicKeyPem).toBe(key.publicKeyPem)
  })

  it('differs per node', async () => {
    const other = await openAuditKey(cluster, 'node-2', logger)
    expect(other.keyId).not.toBe(key.keyId)
    expect(other.publicKeyPem).not.toBe(key.publicKeyPem)
  })

  it('lives on both members with an unreadable private value', async () => {
    for (const token of env.tokens) {
      await withToken(token, (pkcs11, session) => {
        const [handle] = findAll(pkcs11, session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_ID, value: auditKeyId('node-1') },
        ])
        expect(handle).toBeDefined()
        const [sensitive] = pkcs11.C_GetAttributeValue(session, handle!, [
          { type: pkcs11js.CKA_SENSITIVE },
        ])
        expect(sensitive?.value).toEqual(Buffer.from([1]))
        expect(() =>
          pkcs11.C_GetAttributeValue(session, handle!, [{ type: pkcs11js.CKA_VALUE }]),
        ).toThrow(/CKR_ATTRIBUTE_SENSITIVE/)
      })
    }
  })

  it('signs what node:crypto and openssl verify', async () => {
    const text = Buffer.from('hsmgate-audit-checkpoint-v1\nwriter=node-1\n')
    const signature = await key.sign(text)
    expect(verify('sha256', text, { key: key.publicKeyPem, dsaEncoding: 'der' }, signature)).toBe(
      true,
    )
    const files = {
      data: join(env.dir, 'data'),
      sig: join(env.dir, 'sig'),
      pub: join(env.dir, 'pub'),
    }
    writeFileSync(files.data, text)
    writeFileSync(files.sig, signature)
    writeFileSync(files.pub, key.publicKeyPem)
    const out = execFileSync(
      'openssl',
      ['dgst', '-sha256', '-verify', files.pub, '-signature', files.sig, files.data],
      { encoding: 'utf8' },
    )
    expect(out.trim()).toBe('Verified OK')

    writeFileSync(files.data, Buffer.concat([text, Buffer.from('x')]))
    expect(() =>
      execFileSync(
        'openssl',
        ['dgst', '-sha256', '-verify', files.pub, '-signature', files.sig, files.data],
        {
          stdio: 'pipe',
        },
      ),
    ).toThrow()
  })

  it('is published to the trusted key file once', async () => {
    const file = join(env.dir, 'pki', 'audit-keys.pem')
    expect(publishAuditPublicKey(file, key.publicKeyPem)).toBe(true)
    expect(publishAuditPublicKey(file, key.publicKeyPem)).toBe(false)
  })
})

describe('audit checkpointer', () => {
  it('signs every writer after the configured number of records', async () => {
    const store = newStore('by-count')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 5,
      intervalMs: 3_600_000,
      logger,
    })
    await store.appendAuditBatch([1, 2, 3, 4].map((n) => entry('node-1', n)))
    await store.appendAuditBatch([1, 2, 3, 4, 5].map((n) => entry('node-1/authz', n)))
    const signed = await checkpointer.checkpoint(false)
    expect(signed.map((c) => [c.writer, c.seq])).toEqual([['node-1/authz', 5]])

    await store.appendAuditBatch([entry('node-1', 5)])
    const next = await checkpointer.checkpoint(false)
    expect(next.map((c) => [c.writer, c.seq])).toEqual([['node-1', 5]])
    const [checkpoint] = await store.auditCheckpoints('node-1')
    expect(checkpoint?.headHash).toBe((await store.auditRecords('node-1'))[4]?.hash)
    await store.close()
  })

  it('signs new records once the interval has passed', async () => {
    const store = newStore('by-time')
    let now = 1_750_000_000_000
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1000,
      intervalMs: 60_000,
      logger,
      now: () => now,
    })
    await store.appendAuditBatch([entry('node-1', 1), entry('node-1', 2)])
    expect(await checkpointer.checkpoint(false)).toEqual([])
    now += 60_000
    const signed = await checkpointer.checkpoint(false)
    expect(signed.map((c) => c.seq)).toEqual([2])
    now += 60_000
    expect(await checkpointer.checkpoint(false)).toEqual([])
    await store.close()
  })

  it('signs every unsigned head at stop', async () => {
    const store = newStore('at-stop')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1000,
      intervalMs: 3_600_000,
      logger,
    })
    checkpointer.start()
    await store.appendAuditBatch([entry('node-1', 1), entry('node-1/authz', 1), entry('node-1', 2)])
    const signed = await checkpointer.stop()
    expect(signed.map((c) => [c.writer, c.seq])).toEqual([
      ['node-1', 2],
      ['node-1/authz', 1],
    ])
    await store.close()
  })

  it('stores checkpoints that verify only with the trusted key', async () => {
    const store = newStore('verify')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 3_600_000,
      logger,
    })
    await store.appendAuditBatch([entry('node-1', 1)])
    await checkpointer.checkpoint(false)
    const [checkpoint] = await store.auditCheckpoints('node-1')
    const trusted = new TrustedAuditKeys()
    trusted.addPem(key.publicKeyPem)
    expect(checkCheckpoint(checkpoint!, trusted)).toEqual({ ok: true })

    const moved = { ...checkpoint!, seq: 2 }
    expect(checkCheckpoint(moved, trusted)).toEqual({ ok: false, reason: 'bad_signature' })
    const other = await openAuditKey(cluster, 'node-2', logger)
    const foreign = { ...checkpoint!, publicKey: other.publicKeyPem }
    expect(checkCheckpoint(foreign, trusted)).toEqual({ ok: false, reason: 'untrusted_key' })
    expect(checkpointText(checkpoint!)).toContain(`head=${checkpoint!.headHash}\n`)
    await store.close()
  })

  it('never signs a writer of another node', async () => {
    const store = newStore('foreign-writer')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 1000,
      logger,
    })
    // A process that can write the store appends a chain for a node that does not exist.
    await store.appendAuditBatch([1, 2, 3].map((n) => entry('node-9', n)))
    await store.appendAuditBatch([1, 2, 3].map((n) => entry('node-1-authz', n)))
    await store.appendAuditBatch([entry('node-1', 1)])
    const signed = await checkpointer.stop()
    expect(signed.map((c) => c.writer)).toEqual(['node-1'])
    expect(await store.auditCheckpoints('node-9')).toEqual([])
    expect(await store.auditCheckpoints('node-1-authz')).toEqual([])
    await store.close()
  })

  it('rejects a chain edited since the last checkpoint', async () => {
    const store = newStore('edited')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 3_600_000,
      logger,
    })
    await store.appendAuditBatch([1, 2].map((n) => entry('node-1', n)))
    expect((await checkpointer.checkpoint(false)).map((c) => c.seq)).toEqual([2])
    await store.appendAuditBatch([3, 4].map((n) => entry('node-1', n)))
    const db = new Database(join(env.dir, 'edited.db'))
    db.prepare("UPDATE audit SET operation = 'decrypt' WHERE node = 'node-1' AND seq = 3").run()
    db.close()

    const before = lines.length
    expect(await checkpointer.checkpoint(false)).toEqual([])
    expect(await checkpointer.checkpoint(true)).toEqual([])
    expect((await store.auditCheckpoints('node-1')).map((c) => c.seq)).toEqual([2])
    const alerts = lines.slice(before).filter((line) => line.alert === CHAIN_MISMATCH_ALERT)
    expect(alerts).toHaveLength(1)
    expect(alerts[0]).toMatchObject({ level: 50, writer: 'node-1', seq: 3, signed_seq: 2 })
    await store.close()
  })

  it('rejects a signed record rewritten with recomputed hashes', async () => {
    const store = newStore('rewritten')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 3_600_000,
      logger,
    })
    await store.appendAuditBatch([entry('node-1/authz', 1)])
    expect((await checkpointer.checkpoint(false)).map((c) => c.seq)).toEqual([1])
    // The whole chain is replaced by a consistent one that differs from what was signed.
    const db = new Database(join(env.dir, 'rewritten.db'))
    db.prepare("DELETE FROM audit WHERE node = 'node-1/authz'").run()
    db.close()
    await store.appendAuditBatch([{ ...entry('node-1/authz', 1), key: 'payments-data' }])
    await store.appendAuditBatch([entry('node-1/authz', 2)])

    expect(await checkpointer.checkpoint(true)).toEqual([])
    // A new checkpointer reads the last checkpoint from the store and rejects the chain too.
    const restarted = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 3_600_000,
      logger,
    })
    expect(await restarted.checkpoint(true)).toEqual([])
    await store.close()
  })

  it('ignores a checkpoint row that its own key did not sign', async () => {
    const store = newStore('forged-row')
    const checkpointer = new AuditCheckpointer(store, key, {
      signer: 'node-1',
      everyRecords: 1,
      intervalMs: 3_600_000,
      logger,
    })
    const records = await store.appendAuditBatch([1, 2, 3].map((n) => entry('node-1', n)))
    // A forged row claims that node-1 signed seq 3, to skip the check of records 1 to 3.
    await store.putAuditCheckpoint({
      writer: 'node-1',
      seq: 3,
      headHash: records[2]!.hash,
      time: new Date().toISOString(),
      signer: 'node-1',
      keyId: key.keyId,
      publicKey: key.publicKeyPem,
      signature: Buffer.alloc(64).toString('base64'),
    })
    const db = new Database(join(env.dir, 'forged-row.db'))
    db.prepare("UPDATE audit SET principal = 'x' WHERE node = 'node-1' AND seq = 2").run()
    db.close()
    await store.appendAuditBatch([entry('node-1', 4)])

    expect(await checkpointer.checkpoint(true)).toEqual([])
    await store.close()
  })

  it('makes verify reject a checkpoint by another node', async () => {
    const store = newStore('foreign-signer')
    const [record] = await store.appendAuditBatch([entry('node-9', 1)])
    // A checkpoint as a backend without the writer check signed it: node-1 over node-9's chain.
    const claims = {
      writer: 'node-9',
      seq: 1,
      headHash: record!.hash,
      time: new Date().toISOString(),
      signer: 'node-1',
      keyId: key.keyId,
    }
    const signature = await key.sign(Buffer.from(checkpointText(claims), 'utf8'))
    await store.putAuditCheckpoint({
      ...claims,
      publicKey: key.publicKeyPem,
      signature: signature.toString('base64'),
    })
    const trusted = new TrustedAuditKeys()
    trusted.addPem(key.publicKeyPem)

    const result = await verifyWriter(store, 'node-9', trusted)
    expect(result.coveredSeq).toBe(0)
    expect(result.validCheckpoints).toBe(0)
    expect(result.problems.map((p) => p.kind)).toEqual(['checkpoint_foreign_signer'])
    await store.close()
  })
})
