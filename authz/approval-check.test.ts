import { describe, expect, it } from 'vitest'
import { application } from '../test/helpers/policy-fixtures.js'
import { approvalRouteDeny } from './approval-check.js'
import { resolveApprovalRoute, type ApprovalOperation } from './approval-routes.js'
import { DualControl } from './approval-rules.js'
import { resolvePrincipal } from './principal.js'

const DOMAIN = 'hsmgate.demo'
const dual = new DualControl({
  groups: { custodians: ['alice', 'bob'] },
  rules: [{ operations: ['decrypt'], group: 'custodians', required: 2 }],
  max_ttl: '1h',
})
const apps = async (name: string) =>
  name === 'payments'
    ? application('payments')
    : name === 'frozen'
      ? application('frozen', { suspended: true })
      : undefined
const id = `ap_${'a'.repeat(22)}`
const route = (name: ApprovalOperation['name']): ApprovalOperation => ({ name, id })
const deny = async (name: ApprovalOperation['name'], principal: string) =>
  (await approvalRouteDeny(route(name), principal, DOMAIN, dual, apps))?.code

describe('approval routes', () => {
  it('map methods and paths', () => {
    expect(resolveApprovalRoute('POST', '/v1/approvals')).toEqual({ name: 'approval-request' })
    expect(resolveApprovalRoute('GET', '/v1/approvals?x=1')).toEqual({ name: 'approval-list' })
    expect(resolveApprovalRoute('GET', `/v1/approvals/${id}`)).toEqual({
      name: 'approval-show',
      id,
    })
    expect(resolveApprovalRoute('POST', `/v1/approvals/${id}/approve`)).toEqual({
      name: 'approval-approve',
      id,
    })
    expect(resolveApprovalRoute('GET', '/v1/keys')).toBeUndefined()
  })

  it('reject unknown shapes under /v1/approvals', () => {
    for (const [method, path] of [
      ['DELETE', '/v1/approvals'],
      ['POST', '/v1/approvals/not-an-id/approve'],
      ['GET', `/v1/approvals/${id}/approve`],
      ['POST', `/v1/approvals/${id}/approve/extra`],
    ] as const) {
      expect(resolveApprovalRoute(method, path)).toMatchObject({
        status: 404,
        code: 'unknown_route',
      })
    }
  })
})

describe('approval route access', () => {
  const alice = `spiffe://${DOMAIN}/person/alice`
  const mallory = `spiffe://${DOMAIN}/person/mallory`
  const payments = `spiffe://${DOMAIN}/app/payments`

  it('lets group members vote but not request', async () => {
    expect(await deny('approval-approve', alice)).toBeUndefined()
    expect(await deny('approval-deny', alice)).toBeUndefined()
    expect(await deny('approval-list', alice)).toBeUndefined()
    expect(await deny('approval-request', alice)).toBe('forbidden')
  })

  it('rejects people outside every group', async () => {
    expect(await deny('approval-list', mallory)).toBe('forbidden')
    expect(await deny('approval-approve', mallory)).toBe('forbidden')
  })

  it('lets applications request but not vote', async () => {
    expect(await deny('approval-request', payments)).toBeUndefined()
    expect(await deny('approval-show', payments)).toBeUndefined()
    expect(await deny('approval-approve', payments)).toBe('forbidden')
  })

  it('rejects suspended, unknown and foreign principals', async () => {
    expect(await deny('approval-request', `spiffe://${DOMAIN}/app/frozen`)).toBe('forbidden')
    expect(await deny('approval-request', `spiffe://${DOMAIN}/app/ghost`)).toBe('forbidden')
    expect(await deny('approval-approve', 'spiffe://other.example/person/alice')).toBe('forbidden')
  })

  it('leaves people without access to other routes', async () => {
    expect(await resolvePrincipal(alice, DOMAIN, apps)).toEqual({
      ok: false,
      reason: 'unknown_principal',
    })
  })
})
