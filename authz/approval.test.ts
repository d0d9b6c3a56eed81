import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteStore } from '../store/sqlite-store.js'
import type { Approval } from '../store/controls-sqlite.js'
import { DualControl } from './approval-rules.js'
import { approvalsSchema, type ApprovalsConfig } from './controls-schema.js'
import { keyVersion } from '../test/helpers/policy-fixtures.js'

const DOMAIN = 'hsmgate.demo'
const payments = `spiffe://${DOMAIN}/app/payments`
const person = (name: string) => `spiffe://${DOMAIN}/person/${name}`
const digest = 'a'.repeat(64)
const config: ApprovalsConfig = {
  groups: { custodians: ['alice', 'bob', 'carol'], auditors: ['dave'] },
  rules: [
    { operations: ['decrypt'], classification: 'restricted', group: 'custodians', required: 2 },
  ],
  max_ttl: '1h',
}
const dual = new DualControl(config)
const NOW = Date.parse('2026-01-07T12:00:00Z')

let dir: string
let store: SqliteStore

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-approval-'))
  store = new SqliteStore(join(dir, 'store.db'))
})

afterEach(() => {
  store.close()
  rmSync(dir, { recursive: true, force: true })
})

function request(overrides: Partial<Approval> = {}): string {
  const id = `ap_${'x'.repeat(21)}${Math.floor(Math.random() * 10)}`
  store.controls.createApproval({
    id,
    requester: payments,
    operation: 'decrypt',
    key: 'payments-root',
    paramsDigest: digest,
    quota: null,
    extra: 0,
    group: 'custodians',
    required: 2,
    uses: 1,
    usesLeft: 1,
    status: 'pending',
    createdAt: new Date(NOW).toISOString(),
    expiresAt: new Date(NOW + 600_000).toISOString(),
    ...overrides,
  })
  return id
}

function vote(id: string, voter: string, choice: 'approve' | 'deny' = 'approve', now = NOW) {
  return store.controls.vote(
    id,
    { approver: voter, vote: choice, at: new Date(now).toISOString() },
    (a) => dual.voteError(a, voter, DOMAIN, now),
  )
}

const match = {
  requester: payments,
  operation: 'decrypt',
  key: 'payments-root',
  paramsDigest: digest,
}
const at = (ms: number) => new Date(ms).toISOString()

describe('dual control rules', () => {
  it('require approval for decrypt with a restricted key only', () => {
    const restricted = keyVersion('payments-root', 'payments', { classification: 'restricted' })
    const confidential = keyVersion('payments-data', 'payments')
    expect(dual.requirement('decrypt', restricted)).toEqual({
      group: 'custodians',
      required: 2,
      source: 'rule 1',
    })
    expect(dual.requirement('decrypt', confidential)).toBeUndefined()
    expect(dual.requirement('sign', restricted)).toBeUndefined()
  })
})

describe('approval votes', () => {
  it('grant after two distinct approvers', () => {
    const id = request()
    expect(vote(id, person('alice'))).toMatchObject({ status: 'pending' })
    expect(vote(id, person('bob'))).toMatchObject({ status: 'granted' })
  })

  it('reject the requester approving its own request', () => {
    const id = request({ requester: person('alice') })
    expect(vote(id, person('alice'))).toEqual({ error: 'approver_is_requester' })
  })

  it('reject the same approver twice', () => {
    const id = request()
    vote(id, person('alice'))
    expect(vote(id, person('alice'))).toEqual({ error: 'approver_already_voted' })
    expect(store.controls.approval(id)?.status).toBe('pending')
  })

  it('reject an approver outside the group', () => {
    const id = request()
    expect(vote(id, person('dave'))).toEqual({ error: 'approver_not_in_group' })
    expect(vote(id, payments.replace('payments', 'reporting'))).toEqual({
      error: 'approver_not_in_group',
    })
    expect(vote(id, `spiffe://other.domain/person/alice`)).toEqual({
      error: 'approver_not_in_group',
    })
  })

  it('reject votes on an expired request', () => {
    const id = request()
    expect(vote(id, person('alice'), 'approve', NOW + 600_000)).toEqual({
      error: 'approval_expired',
    })
  })

  it('end a request with one deny', () => {
    const id = request()
    vote(id, person('alice'))
    expect(vote(id, person('bob'), 'deny')).toMatchObject({ status: 'denied' })
    expect(vote(id, person('carol'))).toEqual({ error: 'approval_not_pending' })
  })
})

describe('approval grants', () => {
  function granted(overrides: Partial<Approval> = {}): string {
    const id = request(overrides)
    vote(id, person('alice'))
    vote(id, person('bob'))
    return id
  }

  it('are used once for the exact request', () => {
    granted()
    expect(store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })

  it('allow the number of uses requested', () => {
    granted({ uses: 2, usesLeft: 2 })
    expect(store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })

  it('do not cover another key, operation, body or requester', () => {
    granted()
    const others = [
      { ...match, key: 'payments-data' },
      { ...match, operation: 'encrypt' },
      { ...match, paramsDigest: 'b'.repeat(64) },
      { ...match, requester: `spiffe://${DOMAIN}/app/reporting` },
      { ...match, key: null },
    ]
    for (const other of others) {
      expect(store.controls.peekGrant(other, at(NOW))).toBeUndefined()
      expect(store.controls.useGrant(other, at(NOW))).toBeUndefined()
    }
    expect(store.controls.useGrant(match, at(NOW))).toBeDefined()
  })

  it('expire', () => {
    granted()
    expect(store.controls.useGrant(match, at(NOW + 600_000))).toBeUndefined()
  })

  it('do not exist before enough approvals', () => {
    const id = request()
    vote(id, person('alice'))
    expect(store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })
})

describe('approvals configuration', () => {
  const rule = { operations: ['destroy-key'], group: 'custodians', required: 2 }
  const parse = (groups: Record<string, string[]>, rules: unknown[]) =>
    approvalsSchema.safeParse({ groups, rules })

  it('accepts M of N within the group', () => {
    expect(parse({ custodians: ['alice', 'bob'] }, [rule]).success).toBe(true)
  })

  it('rejects M of 0', () => {
    const result = parse({ custodians: ['alice', 'bob'] }, [{ ...rule, required: 0 }])
    expect(result.error?.issues[0]?.path).toEqual(['rules', 0, 'required'])
  })

  it('rejects M greater than N', () => {
    const result = parse({ custodians: ['alice', 'bob'] }, [{ ...rule, required: 3 }])
    expect(result.error?.issues[0]?.message).toContain('between 1 and the 2 distinct members')
  })

  it('counts a member listed twice once', () => {
    const result = parse({ custodians: ['alice', 'alice'] }, [rule])
    expect(result.error?.issues[0]?.path).toEqual(['rules', 0, 'required'])
  })

  it('rejects an empty group', () => {
    const result = parse({ custodians: [] }, [{ ...rule, required: 1 }])
    expect(result.error?.issues.map((i) => i.message).join()).toContain('has no members')
  })

  it('rejects an unknown group', () => {
    const result = parse({ custodians: ['alice'] }, [{ ...rule, group: 'nobody', required: 1 }])
    expect(result.error?.issues[0]?.message).toContain("group 'nobody' is not defined")
  })
})
