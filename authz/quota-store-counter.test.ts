import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testSchema, type TestSchema } from '../test/helpers/postgres-schema.js'
import { PostgresStore } from '../store/postgres/postgres-store.js'
import { QuotaEnforcer, quotasFromConfig } from './quota.js'
import { MemoryQuotaCounter, type QuotaCharge } from './quota-counter.js'
import { StoreQuotaCounter, quotaCounterFor } from './quota-store-counter.js'

// Two stores on one schema stand for two gateway nodes that share a PostgreSQL database.
let schema: TestSchema
let nodeA: PostgresStore
let nodeB: PostgresStore

const decrypt = { app: 'payments', operation: 'decrypt', key: 'payments-data' }

beforeAll(async () => {
  schema = testSchema()
  nodeA = await PostgresStore.open(schema.options({ poolSize: 6 }))
  nodeB = await PostgresStore.open(schema.options({ poolSize: 6 }))
})

afterAll(async () => {
  await nodeA?.close()
  await nodeB?.close()
  await schema?.drop()
})

/** A counter name unique to one test, so that tests share no rows. */
function counter(name: string): string {
  return `${name}-${Math.random().toString(36).slice(2)}`
}

describe('store quota counter', () => {
  it('is chosen for a PostgreSQL store', () => {
    expect(quotaCounterFor(nodeA)).toBeInstanceOf(StoreQuotaCounter)
  })

  it('returns the waits of the in-memory counter', async () => {
    const memory = new MemoryQuotaCounter()
    const shared = new StoreQuotaCounter(nodeA.quotas)
    const charges: QuotaCharge[] = [
      { counter: counter('short'), limit: 3, windowMs: 1_000 },
      { counter: counter('long'), limit: 5, windowMs: 10_000 },
    ]
    // Irregular times, with requests exactly on a window edge, over several windows.
    const times = [0, 10, 10, 500, 999, 1_000, 1_001, 1_010, 1_500, 2_000, 2_001, 9_999, 10_000]
    for (const offset of times) {
      const now = 1_750_000_000_000 + offset
      const expected = await memory.charge(charges, now)
      expect(await shared.charge(charges, now), `at +${offset} ms`).toEqual(expected)
    }
  })

  it('records nothing when one counter is full', async () => {
    const shared = new StoreQuotaCounter(nodeA.quotas)
    const full = { counter: counter('full'), limit: 1, windowMs: 60_000 }
    const free = { counter: counter('free'), limit: 10, windowMs: 60_000 }
    expect(await shared.charge([full], 1_000)).toEqual([0])
    expect(await shared.charge([free, full], 2_000)).toEqual([0, 59_000])
    const rows = await schema.query<{ stamps: string[] }>(
      'SELECT stamps FROM quota_windows WHERE counter = $1',
      [free.counter],
    )
    expect(rows.map((row) => row.stamps.length)).toEqual([0])
  })

  it('admits exactly the limit from concurrent charges on two nodes', async () => {
    const limit = 7
    const charge = { counter: counter('race'), limit, windowMs: 60_000 }
    const counters = [new StoreQuotaCounter(nodeA.quotas), new StoreQuotaCounter(nodeB.quotas)]
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => counters[i % 2]!.charge([charge], 5_000 + i)),
    )
    expect(results.filter(([wait]) => wait === 0)).toHaveLength(limit)
    expect(results.filter(([wait]) => wait! > 0)).toHaveLength(24 - limit)
  })

  it('gives the same Retry-After through the enforcer on both nodes', async () => {
    const quotas = quotasFromConfig([
      { name: counter('retry'), app: 'payments', operation: 'decrypt', limit: 2, window: '10s' },
    ])
    const onA = new QuotaEnforcer(quotas, new StoreQuotaCounter(nodeA.quotas))
    const onB = new QuotaEnforcer(quotas, new StoreQuotaCounter(nodeB.quotas))
    const memory = new QuotaEnforcer(quotas, new MemoryQuotaCounter())
    expect(await onA.charge(decrypt, 1_000)).toBeUndefined()
    expect(await memory.charge(decrypt, 1_000)).toBeUndefined()
    expect(await onB.charge(decrypt, 3_500)).toBeUndefined()
    expect(await memory.charge(decrypt, 3_500)).toBeUndefined()
    const denied = await onA.charge(decrypt, 4_000)
    const expected = await memory.charge(decrypt, 4_000)
    expect(denied?.status).toBe(429)
    expect(denied?.headers).toEqual(expected?.headers)
    expect(denied?.headers?.['retry-after']).toBe('7')
    // The first request leaves the window at 11 000 ms, so one more fits on either node.
    expect(await onB.charge(decrypt, 11_001)).toBeUndefined()
    expect((await onA.charge(decrypt, 11_002))?.status).toBe(429)
  })

  it('deletes counters whose window has passed', async () => {
    const idle = { counter: counter('idle'), limit: 3, windowMs: 1_000 }
    const remaining = () =>
      schema.query('SELECT 1 FROM quota_windows WHERE counter = $1', [idle.counter])
    const start = 9_000_000_000_000
    await nodeA.quotas.charge([idle], start)
    await nodeA.quotas.sweep(start + 500)
    expect(await remaining()).toHaveLength(1)
    await nodeA.quotas.sweep(start + 1_000)
    expect(await remaining()).toHaveLength(0)
  })
})
