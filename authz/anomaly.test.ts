import { describe, expect, it } from 'vitest'
import { AnomalyDetector, type UsageEvent } from './anomaly.js'
import { RateBaseline } from './anomaly-rate.js'
import { anomalyRuleSchema } from './controls-schema.js'

const rule = (raw: Record<string, unknown>) => anomalyRuleSchema.parse(raw)
const event = (overrides: Partial<UsageEvent> = {}): UsageEvent => ({
  app: 'payments',
  knownAddresses: ['127.0.0.1'],
  sourceAddress: '127.0.0.1',
  serial: '0a',
  operation: 'sign',
  key: 'payments-signing',
  nowMs: Date.parse('2026-01-07T12:00:00Z'),
  ...overrides,
})

function detector(raw: Record<string, unknown>) {
  const seen = new Set<string>()
  return new AnomalyDetector([rule(raw)], async (app, kind, value) => {
    const key = `${app}/${kind}/${value}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

describe('rate baseline', () => {
  it('is the first completed bucket, then an exponentially weighted average', async () => {
    const rate = new RateBaseline(1_000, 0.5, 2)
    for (let i = 0; i < 4; i++) rate.add(100 + i)
    expect(rate.add(1_100)).toEqual({ count: 1, baseline: 4, warm: false })
    rate.add(1_200)
    // Bucket two had 2 requests: 0.5 * 2 + 0.5 * 4 = 3.
    expect(rate.add(2_000)).toEqual({ count: 1, baseline: 3, warm: true })
  })

  it('counts buckets without requests as zero', async () => {
    const rate = new RateBaseline(1_000, 0.5, 1)
    for (let i = 0; i < 8; i++) rate.add(i)
    // Buckets 1 and 2 were empty: 8, then 4, then 2.
    expect(rate.add(3_000).baseline).toBe(2)
  })
})

describe('anomaly rules', () => {
  it('report a new source address once', async () => {
    const rules = detector({ kind: 'new_source_address' })
    expect(await rules.observe(event())).toEqual([])
    const [finding] = await rules.observe(event({ sourceAddress: '127.0.0.2' }))
    expect(finding?.subject).toBe('127.0.0.2')
    expect(finding?.actions).toEqual(['alert'])
    expect(await rules.observe(event({ sourceAddress: '127.0.0.2' }))).toEqual([])
  })

  it('report the first use of an operation and of a key', async () => {
    const operations = detector({ kind: 'first_operation' })
    expect(await operations.observe(event())).toHaveLength(1)
    expect(await operations.observe(event())).toHaveLength(0)
    expect((await operations.observe(event({ operation: 'decrypt' })))[0]?.subject).toBe('decrypt')
    const keys = detector({ kind: 'first_key' })
    expect((await keys.observe(event()))[0]?.subject).toBe('payments-signing')
    expect(await keys.observe(event({ key: undefined, operation: 'random' }))).toHaveLength(0)
  })

  it('report use outside the configured hours', async () => {
    const hours = detector({ kind: 'outside_hours', from_hour: 8, to_hour: 18 })
    expect(await hours.observe(event())).toHaveLength(0)
    expect(await hours.observe(event({ nowMs: Date.parse('2026-01-07T18:00:00Z') }))).toHaveLength(
      1,
    )
    expect(
      (await hours.observe(event({ nowMs: Date.parse('2026-01-10T12:00:00Z') })))[0]?.subject,
    ).toBe('Saturday 12h')
  })

  it('report one serial used from two addresses', async () => {
    const serials = detector({ kind: 'serial_multiple_addresses', action: ['alert', 'suspend'] })
    expect(await serials.observe(event())).toHaveLength(0)
    const [finding] = await serials.observe(event({ sourceAddress: '127.0.0.2' }))
    expect(finding?.subject).toBe('0a')
    expect(finding?.actions).toEqual(['alert', 'suspend'])
    expect(await serials.observe(event({ serial: '0b', sourceAddress: '127.0.0.2' }))).toHaveLength(
      0,
    )
  })

  it('report a serial in lowercase', async () => {
    const serials = detector({ kind: 'serial_multiple_addresses', action: ['alert'] })
    expect(await serials.observe(event({ serial: '00:C4:1F' }))).toHaveLength(0)
    const [finding] = await serials.observe(event({ serial: 'C41F', sourceAddress: '127.0.0.2' }))
    expect(finding?.subject).toBe('c41f')
    expect(finding?.message).toContain('certificate c41f of application payments')
    expect(finding?.message).not.toMatch(/C41F/)
  })

  it('report a rate above factor times the baseline only after warm-up', async () => {
    const rate = detector({
      kind: 'rate',
      factor: 10,
      bucket: '1s',
      alpha: 0.5,
      warmup_buckets: 3,
      min_requests: 5,
    })
    const start = Date.parse('2026-01-07T12:00:00Z')
    // A burst before warm-up never fires.
    for (let i = 0; i < 30; i++) expect(await rate.observe(event({ nowMs: start + i }))).toEqual([])
    // Three buckets of one request each bring the baseline close to 1.
    for (let b = 1; b <= 4; b++) await rate.observe(event({ nowMs: start + b * 1_000 }))
    const findings = []
    for (let i = 0; i < 40; i++)
      findings.push(...(await rate.observe(event({ nowMs: start + 5_000 + i }))))
    expect(findings.length).toBeGreaterThan(0)
    expect(findings[0]?.kind).toBe('rate')
  })

  it('report a high rate once per bucket, so that a resumed application is not hit again', async () => {
    const rate = detector({
      kind: 'rate',
      factor: 10,
      bucket: '1s',
      alpha: 0.5,
      warmup_buckets: 2,
      min_requests: 5,
    })
    const start = Date.parse('2026-01-07T12:00:00Z')
    for (let b = 0; b < 3; b++) await rate.observe(event({ nowMs: start + b * 1_000 }))
    const burst = []
    for (let i = 0; i < 40; i++)
      burst.push(...(await rate.observe(event({ nowMs: start + 3_000 + i }))))
    expect(burst.filter((f) => f.kind === 'rate')).toHaveLength(1)
    // After quiet buckets have lowered the baseline again, a new burst is reported once more.
    const next = []
    for (let i = 0; i < 40; i++)
      next.push(...(await rate.observe(event({ nowMs: start + 20_000 + i }))))
    expect(next.filter((f) => f.kind === 'rate')).toHaveLength(1)
  })

  it('reject a require_approval rule without an approval group', async () => {
    const { checkControlReferences } = await import('./controls-schema.js')
    const issues: unknown[] = []
    checkControlReferences(
      {
        anomalies: [rule({ kind: 'first_key', action: ['require_approval'] })],
        approvals: { groups: {}, rules: [], max_ttl: '1h' },
      },
      { addIssue: (issue: unknown) => issues.push(issue) } as never,
    )
    expect(JSON.stringify(issues)).toContain('approval_group')
  })
})
