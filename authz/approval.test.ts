import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteStore } from '../store/sqlite-store.js'
import type { Approval } from '../store/store.js'
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

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-approval-'))
  store = new SqliteStore(join(dir, 'store.db'))
})

afterEach(async () => {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

async function request(overrides: Partial<Approval> = {}): Promise<string> {
  const id = `ap_${'x'.repeat(21)}${Math.floor(Math.random() * 10)}`
  await store.controls.createApproval({
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
  it('require approval for decrypt with a restricted key only', async () => {
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
  it('grant after two distinct approvers', async () => {
    const id = await request()
    expect(await vote(id, person('alice'))).toMatchObject({ status: 'pending' })
    expect(await vote(id, person('bob'))).toMatchObject({ status: 'granted' })
  })

  it('reject the requester approving its own request', async () => {
    const id = await request({ requester: person('alice') })
    expect(await vote(id, person('alice'))).toEqual({ error: 'approver_is_requester' })
  })

  it('reject the same approver twice', async () => {
    const id = await request()
    await vote(id, person('alice'))
    expect(await vote(id, person('alice'))).toEqual({ error: 'approver_already_voted' })
    expect((await store.controls.approval(id))?.status).toBe('pending')
  })

  it('reject an approver outside the group', async () => {
    const id = await request()
    expect(await vote(id, person('dave'))).toEqual({ error: 'approver_not_in_group' })
    expect(await vote(id, payments.replace('payments', 'reporting'))).toEqual({
      error: 'approver_not_in_group',
    })
    expect(await vote(id, `spiffe://other.domain/person/alice`)).toEqual({
      error: 'approver_not_in_group',
    })
  })

  it('reject votes on an expired request', async () => {
    const id = await request()
    expect(await vote(id, person('alice'), 'approve', NOW + 600_000)).toEqual({
      error: 'approval_expired',
    })
  })

  it('end a request with one deny', async () => {
    const id = await request()
    await vote(id, person('alice'))
    expect(await vote(id, person('bob'), 'deny')).toMatchObject({ status: 'denied' })
    expect(await vote(id, person('carol'))).toEqual({ error: 'approval_not_pending' })
  })
})

describe('approval grants', () => {
  async function granted(overrides: Partial<Approval> = {}): Promise<string> {
    const id = await request(overrides)
    await vote(id, person('alice'))
    await vote(id, person('bob'))
    return id
  }

  it('are used once for the exact request', async () => {
    await granted()
    expect(await store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(await store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })

  it('allow the number of uses requested', async () => {
    await granted({ uses: 2, usesLeft: 2 })
    expect(await store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(await store.controls.useGrant(match, at(NOW))).toBeDefined()
    expect(await store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })

  it('do not cover another key, operation, body or requester', async () => {
    await granted()
    const others = [
      { ...match, key: 'payments-data' },
      { ...match, operation: 'encrypt' },
      { ...match, paramsDigest: 'b'.repeat(64) },
      { ...match, requester: `spiffe://${DOMAIN}/app/reporting` },
      { ...match, key: null },
    ]
    for (const other of others) {
      expect(await store.controls.peekGrant(other, at(NOW))).toBeUndefined()
      expect(await store.controls.useGrant(other, at(NOW))).toBeUndefined()
    }
    expect(await store.controls.useGrant(match, at(NOW))).toBeDefined()
  })

  it('expire', async () => {
    await granted()
    expect(await store.controls.useGrant(match, at(NOW + 600_000))).toBeUndefined()
  })

  it('do not exist before enough approvals', async () => {
    const id = await request()
    await vote(id, person('alice'))
    expect(await store.controls.useGrant(match, at(NOW))).toBeUndefined()
  })
})

describe('approvals configuration', () => {
  const rule = { operations: ['destroy-key'], group: 'custodians', required: 2 }
  const parse = (groups: Record<string, string[]>, rules: unknown[]) =>
    approvalsSchema.safeParse({ groups, rules })

  it('accepts M of N within the group', async () => {
    expect(parse({ custodians: ['alice', 'bob'] }, [rule]).success).toBe(true)
  })

  it('rejects M of 0', async () => {
    const result = parse({ custodians: ['alice', 'bob'] }, [{ ...rule, required: 0 }])
    expect(result.error?.issues[0]?.path).toEqual(['rules', 0, 'required'])
  })

  it('rejects M greater than N', async () => {
    const result = parse({ custodians: ['alice', 'bob'] }, [{ ...rule, required: 3 }])
    expect(result.error?.issues[0]?.message).toContain('between 1 and the 2 distinct members')
  })

  it('counts a member listed twice once', async () => {
    const result = parse({ custodians: ['alice', 'alice'] }, [rule])
    expect(result.error?.issues[0]?.path).toEqual(['rules', 0, 'required'])
  })

  it('rejects an empty group', async () => {
    const result = parse({ custodians: [] }, [{ ...rule, required: 1 }])
    expect(result.error?.issues.map((i) => i.message).join()).toContain('has no members')
  })

  it('rejects an unknown group', async () => {
    const result = parse({ custodians: ['alice'] }, [{ ...rule, group: 'nobody', required: 1 }])
    expect(result.error?.issues[0]?.message).toContain("group 'nobody' is not defined")
  })
})
