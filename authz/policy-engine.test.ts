import { rmSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { starterPolicies } from '../cli/init/starter-policies.js'
import {
  application,
  appRequest,
  facts,
  keyVersion,
  policyDirWith,
} from '../test/helpers/policy-fixtures.js'
import { DEFAULT_DENY_ID } from './policy-engine.js'
import { OPERATIONS, isKeyedOperation } from './operation.js'
import { loadPolicyEngine } from './policy-watch.js'

const dirs: string[] = []
function engineWith(files: Record<string, string>) {
  const dir = policyDirWith(files)
  dirs.push(dir)
  return loadPolicyEngine(dir)
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

const payments = application('payments')
const reporting = application('reporting')
const signing = keyVersion('payments-signing', 'payments')

describe('starter policies', () => {
  const engine = engineWith(starterPolicies())

  it('lets an application use its own keys for every key operation', () => {
    for (const op of OPERATIONS.filter(isKeyedOperation)) {
      const decision = engine.decide(appRequest(payments, op, signing))
      expect(decision, op).toMatchObject({ allowed: true, policyIds: ['own-keys'] })
    }
  })

  it("denies another application's key by default", () => {
    const decision = engine.decide(appRequest(reporting, 'sign', signing))
    expect(decision).toMatchObject({ allowed: false, policyIds: [DEFAULT_DENY_ID] })
  })

  it('allows list-keys and random but not health to applications', () => {
    expect(engine.decide(appRequest(payments, 'list-keys')).allowed).toBe(true)
    expect(engine.decide(appRequest(payments, 'random')).allowed).toBe(true)
    expect(engine.decide(appRequest(payments, 'health')).allowed).toBe(false)
  })

  it('allows the probe only health', () => {
    const probe = { kind: 'service' as const, name: 'probe' }
    const at = (action: string) => engine.decide({ principal: probe, action, context: facts() })
    expect(at('health').allowed).toBe(true)
    expect(at('random').allowed).toBe(false)
    expect(at('list-keys').allowed).toBe(false)
    const other = { kind: 'service' as const, name: 'other' }
    expect(engine.decide({ principal: other, action: 'health', context: facts() }).allowed).toBe(
      false,
    )
  })

  it('denies a suspended application everything, its own keys included', () => {
    const suspended = application('payments', { suspended: true })
    const decision = engine.decide(appRequest(suspended, 'sign', signing))
    expect(decision).toEqual({
      allowed: false,
      policyIds: ['suspended-application'],
      reason: 'the application is suspended',
      errors: [],
    })
    expect(engine.decide(appRequest(suspended, 'random')).allowed).toBe(false)
  })

  it('does not grant approval actions through the key-operations group', () => {
    expect(engine.decide(appRequest(payments, 'approval-approve', signing)).allowed).toBe(false)
  })
})

describe('policy evaluation', () => {
  it('lets a forbid override a permit and reports the forbid', () => {
    const engine = engineWith({
      'a.cedar': `@id("all") permit (principal, action, resource);
@id("no-night") @reason("not at night")
forbid (principal, action, resource) when { context.time.hour < 6 };`,
    })
    const night = engine.decide(
      appRequest(payments, 'random', undefined, {
        time: { hour: 3, minute: 0, weekday: 'Monday' },
      }),
    )
    expect(night).toMatchObject({ allowed: false, policyIds: ['no-night'], reason: 'not at night' })
    expect(engine.decide(appRequest(payments, 'random')).allowed).toBe(true)
  })

  it('denies when a forbid policy fails to evaluate', () => {
    const engine = engineWith({
      'a.cedar': `@id("all") permit (principal, action, resource);
@id("overflow") @reason("size check")
forbid (principal, action, resource) when { context.requestBytes * 9223372036854775807 > 0 };`,
    })
    const decision = engine.decide(appRequest(payments, 'random', undefined, { requestBytes: 2 }))
    expect(decision.allowed).toBe(false)
    expect(decision.policyIds).toEqual(['overflow'])
    expect(decision.errors).toHaveLength(1)
  })

  it('rejects a request whose facts do not fit the schema', () => {
    const engine = engineWith(starterPolicies())
    expect(() => engine.decide(appRequest(payments, 'no-such-action'))).toThrow(/schema/)
  })
})

describe('decision cache', () => {
  it('returns the same decision for a repeated request', () => {
    const engine = engineWith(starterPolicies())
    const first = engine.decide(appRequest(payments, 'sign', signing))
    const second = engine.decide(appRequest(payments, 'sign', signing))
    expect(second).toEqual(first)
    expect(second.allowed).toBe(true)
  })

  it('denies at once when the application is suspended after an allow', () => {
    const engine = engineWith(starterPolicies())
    expect(engine.decide(appRequest(payments, 'sign', signing)).allowed).toBe(true)
    const suspended = application('payments', { suspended: true })
    expect(engine.decide(appRequest(suspended, 'sign', signing)).allowed).toBe(false)
    expect(engine.decide(appRequest(payments, 'sign', signing)).allowed).toBe(true)
  })

  it('denies at once when the key changes owner after an allow', () => {
    const engine = engineWith(starterPolicies())
    expect(engine.decide(appRequest(payments, 'sign', signing)).allowed).toBe(true)
    const moved = keyVersion('payments-signing', 'reporting')
    expect(engine.decide(appRequest(payments, 'sign', moved)).allowed).toBe(false)
  })

  it('applies a time window to a request cached at another time', () => {
    const engine = engineWith({
      'a.cedar': `@id("all") permit (principal, action, resource);
@id("no-night") @reason("not at night")
forbid (principal, action, resource) when { context.time.hour < 6 };`,
    })
    const at = (hour: number) =>
      engine.decide(
        appRequest(payments, 'random', undefined, { time: { hour, minute: 0, weekday: 'Monday' } }),
      )
    expect(at(12).allowed).toBe(true)
    expect(at(3).allowed).toBe(false)
    expect(at(12).allowed).toBe(true)
  })

  it('starts empty for a reloaded policy set', () => {
    const allowAll = engineWith({ 'a.cedar': '@id("all") permit (principal, action, resource);' })
    expect(allowAll.decide(appRequest(reporting, 'sign', signing)).allowed).toBe(true)
    const forbidAll = engineWith({
      'a.cedar': `@id("all") permit (principal, action, resource);
@id("none") @reason("nothing")
forbid (principal, action, resource);`,
    })
    expect(forbidAll.decide(appRequest(reporting, 'sign', signing)).allowed).toBe(false)
  })

  it('does not let a caller change a cached decision', () => {
    const engine = engineWith(starterPolicies())
    const decision = engine.decide(appRequest(payments, 'sign', signing))
    expect(() => {
      ;(decision as { allowed: boolean }).allowed = false
    }).toThrow(TypeError)
    expect(engine.decide(appRequest(payments, 'sign', signing)).allowed).toBe(true)
  })
})
