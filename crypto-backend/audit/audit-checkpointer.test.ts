import { execFileSync } from 'node:child_process'
import { verify } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
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
import { SqliteStore } from '../../store/sqlite-store.js'
import type { AuditEntry } from '../../store/store.js'
import { HsmCluster } from '../hsm/index.js'
import { AuditCheckpointer } from './audit-checkpointer.js'
import { auditKeyId, openAuditKey, publishAuditPublicKey, type AuditKey } from './audit-key.js'

let env: SofthsmTestEnv
let cluster: HsmCluster
let key: AuditKey
const { logger } = captureLogger()

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
})
