import { createHash, randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { HsmCluster } from './cluster.js'
import { HsmError } from './errors.js'
import { acquireModule } from './pkcs11-module.js'
import {
  SOFTHSM_MODULE,
  captureLogger,
  createSofthsmEnv,
  type SofthsmTestEnv,
  type TestToken,
} from '../../test/helpers/softhsm-env.js'
import { findToken } from './token-lookup.js'

/*
 * A member fault is simulated by closing all sessions of the token underneath the cluster with
 * C_CloseAllSessions, which also ends the login. The next call on that member then fails with
 * CKR_SESSION_HANDLE_INVALID, as after a device reset or a lost network HSM connection.
 * SoftHSM2 has no removable device, and deleting its token directory while the module is
 * loaded makes it return CKR_OBJECT_HANDLE_INVALID and CKR_GENERAL_ERROR until the process
 * restarts, so that path cannot show recovery.
 */

let env: SofthsmTestEnv
let cluster: HsmCluster | undefined
const digest = createHash('sha256').update('failover').digest()
const keyId = randomBytes(16)

function tokenAt(index: number): TestToken {
  const token = env.tokens[index]
  if (token === undefined) throw new Error(`no token ${index}`)
  return token
}

function closeSessionsUnderneath(index: number): void {
  const module = acquireModule(SOFTHSM_MODULE)
  try {
    const { slot } = findToken(
      module.pkcs11,
      { label: tokenAt(index).label },
      'test',
      SOFTHSM_MODULE,
    )
    module.pkcs11.C_CloseAllSessions(slot)
  } finally {
    module.release()
  }
}

async function openCluster(recheckIntervalMs: number, log = captureLogger()): Promise<HsmCluster> {
  cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
    logger: log.logger,
    recheckIntervalMs,
  })
  return cluster
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return condition()
}

beforeAll(async () => {
  env = await createSofthsmEnv(['failover-a', 'failover-b'])
  const setup = await openCluster(60_000)
  await setup.provisionClusterKek({
    soPins: { 'hsm-a': tokenAt(0).soPin, 'hsm-b': tokenAt(1).soPin },
  })
  await setup.generateEcKeyPair({ id: keyId, label: 'test:failover' }, 'P-256')
  await setup.close()
})

afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

afterAll(() => env?.cleanup())

describe('failover', () => {
  it('operations succeed while member B is failed', async () => {
    const log = captureLogger()
    const active = await openCluster(60_000, log)
    closeSessionsUnderneath(1)

    for (let i = 0; i < 6; i += 1) {
      expect(await active.signEcdsa(keyId, digest)).toHaveLength(64)
    }
    const [a, b] = active.status()
    expect(a?.state).toBe('healthy')
    expect(b?.state).toBe('failed')
    expect(b?.lastError).toContain('CKR_SESSION_HANDLE_INVALID')
    expect(log.messages()).toContain('hsm member hsm-b: healthy -> failed')
  })

  it('re-check brings member B back', async () => {
    const log = captureLogger()
    const active = await openCluster(100, log)
    closeSessionsUnderneath(1)
    for (let i = 0; i < 2; i += 1) await active.signEcdsa(keyId, digest)
    expect(log.messages()).toContain('hsm member hsm-b: healthy -> failed')

    const healthy = await waitFor(
      () => active.status().every((member) => member.state === 'healthy'),
      5_000,
    )
    expect(healthy).toBe(true)
    expect(log.messages()).toContain('hsm member hsm-b: failed -> healthy')
    for (let i = 0; i < 4; i += 1) {
      expect(await active.signEcdsa(keyId, digest)).toHaveLength(64)
    }
    expect(active.status().map((member) => member.state)).toEqual(['healthy', 'healthy'])
  })

  it('no healthy member gives hsm_unavailable', async () => {
    const active = await openCluster(60_000)
    closeSessionsUnderneath(0)
    closeSessionsUnderneath(1)

    const error = await active.signEcdsa(keyId, digest).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(HsmError)
    expect((error as HsmError).code).toBe('hsm_unavailable')
    const again = await active.random(8).catch((caught: unknown) => caught)
    expect((again as HsmError).code).toBe('hsm_unavailable')
    expect(active.status().map((member) => member.state)).toEqual(['failed', 'failed'])
  })

  it('operations after close give hsm_unavailable', async () => {
    const active = await openCluster(60_000)
    await active.close()
    const error = await active.random(8).catch((caught: unknown) => caught)
    expect((error as HsmError).code).toBe('hsm_unavailable')
  })
})
