import { describe, expect, it } from 'vitest'
import { QuotaEnforcer, quotasFromConfig } from './quota.js'
import { MemoryQuotaCounter } from './quota-counter.js'
import { controlsFields } from './controls-schema.js'

const decrypt = { app: 'payments', operation: 'decrypt', key: 'payments-data' }

function enforcer(extra = 0) {
  const quotas = quotasFromConfig([
    { app: 'payments', operation: 'decrypt', limit: 3, window: '10s' },
    { name: 'all-payments', app: 'payments', limit: 5, window: '1m' },
  ])
  return new QuotaEnforcer(quotas, new MemoryQuotaCounter(), async () => extra)
}

describe('quota enforcer', () => {
  it('allows up to the limit within the window', async () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) expect(await quotas.charge(decrypt, 1_000 + i)).toBeUndefined()
    const deny = await quotas.charge(decrypt, 1_500)
    expect(deny?.status).toBe(429)
    expect(deny?.code).toBe('quota_exceeded')
  })

  it('admits only the limit when charges run concurrently', async () => {
    const quotas = new QuotaEnforcer(
      quotasFromConfig([{ app: 'payments', operation: 'decrypt', limit: 3, window: '10s' }]),
      new MemoryQuotaCounter(),
      // Each extension lookup yields to the event loop, as a store across the network does.
      () => new Promise((resolve) => setImmediate(() => resolve(0))),
    )
    const results = await Promise.all(
      Array.from({ length: 10 }, () => quotas.charge(decrypt, 1_000)),
    )
    expect(results.filter((deny) => deny === undefined)).toHaveLength(3)
    expect(results.filter((deny) => deny?.status === 429)).toHaveLength(7)
  })

  it('sets Retry-After to the seconds until the window admits the next request', async () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) await quotas.charge(decrypt, 1_000 + i * 1_000)
    // The oldest request, at 1000 ms, leaves the 10 s window at 11000 ms.
    expect((await quotas.charge(decrypt, 4_200))?.headers?.['retry-after']).toBe('7')
    expect((await quotas.charge(decrypt, 10_999))?.headers?.['retry-after']).toBe('1')
    expect(await quotas.charge(decrypt, 11_000)).toBeUndefined()
  })

  it('slides the window instead of resetting it', async () => {
    const quotas = enforcer()
    await quotas.charge(decrypt, 0)
    await quotas.charge(decrypt, 9_000)
    await quotas.charge(decrypt, 9_500)
    // At 10 s the first request left the window, the other two have not.
    expect(await quotas.charge(decrypt, 10_000)).toBeUndefined()
    expect((await quotas.charge(decrypt, 10_100))?.status).toBe(429)
  })

  it('charges nothing when any matching quota denies', async () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) await quotas.charge(decrypt, i)
    expect((await quotas.charge(decrypt, 10))?.message).toContain("quota 'quota-1'")
    // The denied decrypts were not charged to all-payments: two more signs still fit.
    const sign = { app: 'payments', operation: 'sign', key: 'payments-signing' }
    expect(await quotas.charge(sign, 20)).toBeUndefined()
    expect(await quotas.charge(sign, 21)).toBeUndefined()
    expect((await quotas.charge(sign, 22))?.message).toContain("quota 'all-payments'")
  })

  it('counts other applications separately', async () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) await quotas.charge(decrypt, i)
    expect(await quotas.charge({ ...decrypt, app: 'reporting' }, 5)).toBeUndefined()
  })

  it('adds the extra requests of an approved extension', async () => {
    const quotas = enforcer(2)
    for (let i = 0; i < 5; i++) expect(await quotas.charge(decrypt, i)).toBeUndefined()
    expect((await quotas.charge(decrypt, 6))?.status).toBe(429)
  })
})

describe('quota configuration', () => {
  const parse = (quotas: unknown) => controlsFields.quotas.safeParse(quotas)

  it('names the field of an invalid quota', async () => {
    const result = parse([{ app: 'payments', limit: 0, window: '1m' }])
    expect(result.success).toBe(false)
    expect(result.error?.issues[0]?.path).toEqual([0, 'limit'])
  })

  it('rejects a window that is no duration', async () => {
    const result = parse([{ app: 'payments', limit: 5, window: 'soon' }])
    expect(result.error?.issues[0]?.path).toEqual([0, 'window'])
  })

  it('rejects an unknown operation', async () => {
    const result = parse([{ app: 'payments', operation: 'steal', limit: 5, window: '1m' }])
    expect(result.error?.issues[0]?.path).toEqual([0, 'operation'])
  })

  it('rejects a quota name used twice', async () => {
    const quota = { name: 'q', app: 'payments', limit: 5, window: '1m' }
    const result = parse([quota, quota])
    expect(result.error?.issues[0]?.message).toContain("name 'q' is used twice")
  })
})
