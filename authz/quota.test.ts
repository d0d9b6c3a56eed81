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
  return new QuotaEnforcer(quotas, new MemoryQuotaCounter(), () => extra)
}

describe('quota enforcer', () => {
  it('allows up to the limit within the window', () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) expect(quotas.charge(decrypt, 1_000 + i)).toBeUndefined()
    const deny = quotas.charge(decrypt, 1_500)
    expect(deny?.status).toBe(429)
    expect(deny?.code).toBe('quota_exceeded')
  })

  it('sets Retry-After to the seconds until the window admits the next request', () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) quotas.charge(decrypt, 1_000 + i * 1_000)
    // The oldest request, at 1000 ms, leaves the 10 s window at 11000 ms.
    expect(quotas.charge(decrypt, 4_200)?.headers?.['retry-after']).toBe('7')
    expect(quotas.charge(decrypt, 10_999)?.headers?.['retry-after']).toBe('1')
    expect(quotas.charge(decrypt, 11_000)).toBeUndefined()
  })

  it('slides the window instead of resetting it', () => {
    const quotas = enforcer()
    quotas.charge(decrypt, 0)
    quotas.charge(decrypt, 9_000)
    quotas.charge(decrypt, 9_500)
    // At 10 s the first request left the window, the other two have not.
    expect(quotas.charge(decrypt, 10_000)).toBeUndefined()
    expect(quotas.charge(decrypt, 10_100)?.status).toBe(429)
  })

  it('charges nothing when any matching quota denies', () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) quotas.charge(decrypt, i)
    expect(quotas.charge(decrypt, 10)?.message).toContain("quota 'quota-1'")
    // The denied decrypts were not charged to all-payments: two more signs still fit.
    const sign = { app: 'payments', operation: 'sign', key: 'payments-signing' }
    expect(quotas.charge(sign, 20)).toBeUndefined()
    expect(quotas.charge(sign, 21)).toBeUndefined()
    expect(quotas.charge(sign, 22)?.message).toContain("quota 'all-payments'")
  })

  it('counts other applications separately', () => {
    const quotas = enforcer()
    for (let i = 0; i < 3; i++) quotas.charge(decrypt, i)
    expect(quotas.charge({ ...decrypt, app: 'reporting' }, 5)).toBeUndefined()
  })

  it('adds the extra requests of an approved extension', () => {
    const quotas = enforcer(2)
    for (let i = 0; i < 5; i++) expect(quotas.charge(decrypt, i)).toBeUndefined()
    expect(quotas.charge(decrypt, 6)?.status).toBe(429)
  })
})

describe('quota configuration', () => {
  const parse = (quotas: unknown) => controlsFields.quotas.safeParse(quotas)

  it('names the field of an invalid quota', () => {
    const result = parse([{ app: 'payments', limit: 0, window: '1m' }])
    expect(result.success).toBe(false)
    expect(result.error?.issues[0]?.path).toEqual([0, 'limit'])
  })

  it('rejects a window that is no duration', () => {
    const result = parse([{ app: 'payments', limit: 5, window: 'soon' }])
    expect(result.error?.issues[0]?.path).toEqual([0, 'window'])
  })

  it('rejects an unknown operation', () => {
    const result = parse([{ app: 'payments', operation: 'steal', limit: 5, window: '1m' }])
    expect(result.error?.issues[0]?.path).toEqual([0, 'operation'])
  })

  it('rejects a quota name used twice', () => {
    const quota = { name: 'q', app: 'payments', limit: 5, window: '1m' }
    const result = parse([quota, quota])
    expect(result.error?.issues[0]?.message).toContain("name 'q' is used twice")
  })
})
