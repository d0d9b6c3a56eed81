import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HsmError } from './errors.js'
import { acquireModule, type Pkcs11Module } from './pkcs11-module.js'
import { SessionPool, type SessionLease } from './session-pool.js'
import {
  SOFTHSM_MODULE,
  createSofthsmEnv,
  type SofthsmTestEnv,
} from '../../test/helpers/softhsm-env.js'
import { findToken } from './token-lookup.js'

let env: SofthsmTestEnv
let module: Pkcs11Module
let slot: Buffer

function newPool(size: number, acquireTimeoutMs = 1_000): SessionPool {
  const pool = new SessionPool(module.pkcs11, slot, { member: 'pool-test', size, acquireTimeoutMs })
  pool.open()
  return pool
}

function sessionState(session: Buffer): number {
  return module.pkcs11.C_GetSessionInfo(session).state
}

beforeAll(async () => {
  env = await createSofthsmEnv(['pool-token'])
  module = acquireModule(SOFTHSM_MODULE)
  slot = findToken(module.pkcs11, { label: 'pool-token' }, 'test', SOFTHSM_MODULE).slot
})

afterAll(() => {
  module?.release()
  env?.cleanup()
})

describe('SessionPool', () => {
  it('serves waiters in FIFO order', async () => {
    const pool = newPool(2)
    const first = await pool.acquire()
    const second = await pool.acquire()
    expect(pool.inUse).toBe(2)

    const order: number[] = []
    const waiting = [1, 2, 3].map((n) =>
      pool.acquire().then((lease) => {
        order.push(n)
        return lease
      }),
    )
    first.release()
    second.release()
    const [third, fourth] = await Promise.all(waiting.slice(0, 2))
    third?.release()
    const fifth = await waiting[2]
    expect(order).toEqual([1, 2, 3])
    fourth?.release()
    fifth?.release()
    expect(pool.inUse).toBe(0)
    expect(pool.sessions).toBe(2)
    await pool.close(0)
  })

  it('times out a waiting acquire', async () => {
    const pool = newPool(1, 100)
    const lease = await pool.acquire()
    const started = Date.now()
    const error = await pool.acquire().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(HsmError)
    expect((error as HsmError).code).toBe('hsm_timeout')
    expect((error as HsmError).message).toContain('pool_size 1')
    expect(Date.now() - started).toBeGreaterThanOrEqual(90)
    lease.release()
    await pool.close(0)
  })

  it('replaces a discarded session and keeps the login', async () => {
    const pool = newPool(1)
    pool.login(env.tokens[0]?.userPin ?? '')
    const lease: SessionLease = await pool.acquire()
    const old = lease.session
    lease.release({ discard: true })
    const next = await pool.acquire()
    expect(next.session.equals(old)).toBe(false)
    expect(sessionState(next.session)).toBe(3) // CKS_RW_USER_FUNCTIONS
    expect(() => module.pkcs11.C_GetSessionInfo(old)).toThrow()
    next.release()
    await pool.close(0)
  })

  it('accepts a second login as already logged in', () => {
    const pool = newPool(1)
    const pin = env.tokens[0]?.userPin ?? ''
    pool.login(pin)
    expect(() => pool.login(pin)).not.toThrow()
    void pool.close(0)
  })

  it('rejects waiters when closed', async () => {
    const pool = newPool(1)
    const lease = await pool.acquire()
    const waiting = pool.acquire().catch((caught: unknown) => caught)
    const closing = pool.close(1_000)
    lease.release()
    await closing
    expect(((await waiting) as HsmError).code).toBe('hsm_unavailable')
    expect(pool.sessions).toBe(0)
    expect(pkcs11js.CKF_RW_SESSION).toBeGreaterThan(0)
  })
})
