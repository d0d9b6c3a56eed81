import { describe, expect, it } from 'vitest'
import { keyTypeOf } from '../store/key-type-request.js'
import { prospectiveKey } from './prospective-key.js'
import type { PolicyPrincipal } from './policy-request.js'

const principal: PolicyPrincipal = {
  kind: 'application',
  application: {
    name: 'reporting',
    team: 'demo',
    hosts: ['localhost'],
    addresses: ['127.0.0.1'],
    suspended: false,
    createdAt: '2026-12-04T00:00:00.000Z',
  },
}

const body = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value))

describe('prospective key', () => {
  const requests: Array<Record<string, unknown>> = [
    { type: 'rsa', size: 2048 },
    { type: 'rsa' },
    { type: 'ec', curve: 'P-384' },
    { type: 'ec' },
    { type: 'aes' },
    { type: 'hmac', size: 384 },
    { type: 'ed25519' },
    { type: 'rsa-4096' },
  ]
  for (const request of requests) {
    it(`judges the stored type for ${JSON.stringify(request)}`, () => {
      const key = prospectiveKey('reporting-new', principal, body(request))
      expect(key.type).toBe(keyTypeOf(request))
    })
  }

  it('gives an empty type for a body the backend rejects', () => {
    expect(prospectiveKey('k', principal, body({ type: 'rsa', size: 1024 })).type).toBe('')
    expect(prospectiveKey('k', principal, body({ type: 'des' })).type).toBe('')
    expect(prospectiveKey('k', principal, Buffer.from('not json')).type).toBe('')
  })

  it('makes the caller the owner', () => {
    const key = prospectiveKey('payments-x', principal, body({ type: 'aes', owner: 'payments' }))
    expect(key.owner).toBe('reporting')
    expect(key.classification).toBe('confidential')
  })
})
