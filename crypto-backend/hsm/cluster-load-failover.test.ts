import { createHash, randomBytes, verify, createPublicKey } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HsmCluster } from './cluster.js'
import { sign } from './key-operations.js'
import { acquireModule } from './pkcs11-module.js'
import { findToken } from './token-lookup.js'
import pkcs11js from 'pkcs11js'
import {
  SOFTHSM_MODULE,
  captureLogger,
  createSofthsmEnv,
  type SofthsmTestEnv,
} from '../../test/helpers/softhsm-env.js'

/*
 * Failover while a load runs. Member B's sessions and login are ended underneath the cluster
 * with C_CloseAllSessions (SoftHSM2 has no removable token; see cluster-failover.test.ts), while
 * eight concurrent callers sign. Every call must succeed: signing is idempotent, so the calls in
 * flight on B are retried once on A. B must then rejoin through its re-check.
 */

let env: SofthsmTestEnv
let cluster: HsmCluster
const keyId = randomBytes(16)
let spki: Buffer
const digest = createHash('sha256').update('load').digest()

function closeSessionsOf(label: string): void {
  const module = acquireModule(SOFTHSM_MODULE)
  try {
    const { slot } = findToken(module.pkcs11, { label }, 'test', SOFTHSM_MODULE)
    module.pkcs11.C_CloseAllSessions(slot)
  } finally {
    module.release()
  }
}

beforeAll(async () => {
  env = await createSofthsmEnv(['load-a', 'load-b'])
  cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
    logger: captureLogger().logger,
    recheckIntervalMs: 200,
  })
  const [a, b] = env.tokens
  await cluster.provisionClusterKek({ soPins: { 'hsm-a': a!.soPin, 'hsm-b': b!.soPin } })
  spki = (await cluster.generateKey('ec-p256', { id: keyId, label: 'test:load' })) as Buffer
}, 60_000)

afterAll(async () => {
  await cluster?.close()
  env?.cleanup()
})

async function worker(deadline: number, results: { ok: number; failed: string[] }) {
  const mechanism = { mechanism: pkcs11js.CKM_ECDSA }
  for (let i = 0; i < 5_000 && Date.now() < deadline; i += 1) {
    try {
      const raw = await sign(cluster, { id: keyId, part: 'private' }, mechanism, digest)
      const key = createPublicKey({ key: spki, format: 'der', type: 'spki' })
      const valid = verify('sha256', Buffer.from('load'), { key, dsaEncoding: 'ieee-p1363' }, raw)
      if (!valid) results.failed.push('invalid signature')
      else results.ok += 1
    } catch (error) {
      results.failed.push((error as Error).message)
    }
  }
}

describe('failover under load', () => {
  it('loses no request when a member fails mid-load, and the member rejoins', async () => {
    const results = { ok: 0, failed: [] as string[] }
    const deadline = Date.now() + 3_000
    const load = Promise.all(Array.from({ length: 8 }, () => worker(deadline, results)))
    await new Promise((resolve) => setTimeout(resolve, 800))
    closeSessionsOf('load-b')
    await load

    expect(results.failed).toEqual([])
    expect(results.ok).toBeGreaterThan(100)
    const [a, b] = cluster.status()
    expect(b?.counters.failovers).toBe(1)
    expect(b?.counters.faults).toBeGreaterThanOrEqual(1)
    expect(a?.counters.retries).toBeGreaterThanOrEqual(1)

    const deadlineRejoin = Date.now() + 5_000
    while (cluster.status()[1]?.state !== 'healthy' && Date.now() < deadlineRejoin) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(cluster.status()[1]?.state).toBe('healthy')
    expect(cluster.status()[1]?.counters.recoveries).toBe(1)
    const before = cluster.status()[1]?.counters.operations ?? 0
    for (let i = 0; i < 4; i += 1)
      await sign(cluster, { id: keyId, part: 'private' }, { mechanism: pkcs11js.CKM_ECDSA }, digest)
    expect(cluster.status()[1]?.counters.operations).toBeGreaterThan(before)
  })

  it('the health check marks an idle member failed without any request', async () => {
    closeSessionsOf('load-a')
    const deadline = Date.now() + 3_000
    while (cluster.status()[0]?.counters.failovers !== 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(cluster.status()[0]?.counters.failovers).toBe(1)
  })
})
