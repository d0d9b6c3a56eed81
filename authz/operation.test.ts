import { describe, expect, it } from 'vitest'
import {
  describeOperation,
  resolveEnrollOperation,
  resolveOperation,
  type RouteError,
} from './operation.js'

/** Returns the route error for a request that must not resolve. */
function routeError(method: string, path: string): RouteError {
  const result = resolveOperation(method, path)
  if (result.ok) {
    throw new Error(`${method} ${path} resolved to ${result.operation.name}`)
  }
  return result.error
}

describe('resolveOperation', () => {
  const allowed: [string, string, object][] = [
    ['GET', '/v1/keys', { name: 'list-keys' }],
    ['GET', '/v1/crl', { name: 'crl' }],
    ['GET', '/v1/keys?limit=10', { name: 'list-keys' }],
    ['POST', '/v1/random', { name: 'random' }],
    ['GET', '/v1/health', { name: 'health' }],
    ['POST', '/v1/keys/payments-signing/sign', { name: 'sign', key: 'payments-signing' }],
    ['POST', '/v1/keys/k1/verify', { name: 'verify', key: 'k1' }],
    ['POST', '/v1/keys/k1/encrypt?x=1#frag', { name: 'encrypt', key: 'k1' }],
    ['POST', '/v1/keys/0/decrypt', { name: 'decrypt', key: '0' }],
    ['POST', `/v1/keys/${'a'.repeat(64)}/sign`, { name: 'sign', key: 'a'.repeat(64) }],
    ['GET', '/v1/keys/payments-signing', { name: 'describe-key', key: 'payments-signing' }],
    ['POST', '/v1/keys/k1/hmac', { name: 'hmac', key: 'k1' }],
    ['POST', '/v1/keys/k1/hmac-verify', { name: 'hmac-verify', key: 'k1' }],
    ['POST', '/v1/keys/k1/wrap', { name: 'wrap', key: 'k1' }],
    ['POST', '/v1/keys/k1/unwrap', { name: 'unwrap', key: 'k1' }],
    ['POST', '/v1/keys/k1/data-key', { name: 'data-key', key: 'k1' }],
    ['POST', '/v1/keys/k1/create', { name: 'create-key', key: 'k1' }],
    ['POST', '/v1/keys/k1/rotate', { name: 'rotate-key', key: 'k1' }],
    ['POST', '/v1/keys/k1/disable', { name: 'disable-key', key: 'k1' }],
    ['POST', '/v1/keys/k1/enable', { name: 'enable-key', key: 'k1' }],
    ['POST', '/v1/keys/k1/destroy', { name: 'destroy-key', key: 'k1' }],
  ]
  for (const [method, path, operation] of allowed) {
    it(`maps ${method} ${path}`, () => {
      expect(resolveOperation(method, path)).toEqual({ ok: true, operation })
    })
  }

  const invalidKeys: string[] = [
    `/v1/keys/${'a'.repeat(65)}/sign`,
    '/v1/keys/Payments/sign',
    '/v1/keys/pay_ments/sign',
    '/v1/keys//sign',
    '/v1/keys/%2e%2e/sign',
    '/v1/keys/../sign',
    '/v1/keys/a%20b/sign',
  ]
  for (const path of invalidKeys) {
    it(`rejects key name in ${path} with 400`, () => {
      const error = routeError('POST', path)
      expect(error.status).toBe(400)
      expect(error.code).toBe('invalid_key_name')
    })
  }

  const unknown: [string, string][] = [
    ['POST', '/v1/keys'],
    ['GET', '/v1/random'],
    ['POST', '/v1/health'],
    ['HEAD', '/v1/health'],
    ['get', '/v1/health'],
    ['GET', '/v1/keys/k1/sign'],
    ['POST', '/v1/keys/k1/describe-key'],
    ['POST', '/v1/keys/k1/create-key'],
    ['POST', '/v1/keys/k1/destroy-key'],
    ['DELETE', '/v1/keys/k1'],
    ['GET', '/v1/keys/k1/destroy'],
    ['POST', '/v1/keys/k1'],
    ['POST', '/v1/keys/k1/sign/extra'],
    ['POST', '/v1/keys/a/b/sign'],
    ['GET', '/v1/keys/'],
    ['GET', '/v1/health/'],
    ['GET', '//v1/health'],
    ['GET', '/v2/health'],
    ['GET', ''],
    ['GET', '/'],
    ['POST', `/v1/${'x'.repeat(5000)}`],
  ]
  for (const [method, path] of unknown) {
    it(`rejects ${method} ${path.slice(0, 40)} with 404`, () => {
      const error = routeError(method, path)
      expect(error.status).toBe(404)
      expect(error.code).toBe('unknown_route')
    })
  }

  it('bounds the route echoed in the message', () => {
    const error = routeError('POST', `/v1/keys/k/${'x'.repeat(1000)}`)
    expect(error.message.length).toBeLessThanOrEqual(220)
  })
})

describe('describeOperation', () => {
  it('names the key of keyed operations', () => {
    expect(describeOperation({ name: 'sign', key: 'payments-signing' })).toBe(
      "sign with key 'payments-signing'",
    )
  })

  it('prints key-less operations by name', () => {
    expect(describeOperation({ name: 'list-keys' })).toBe('list-keys')
  })
})

describe('resolveEnrollOperation', () => {
  it('maps only enrollment and the CRL', () => {
    expect(resolveEnrollOperation('POST', '/v1/enroll')).toEqual({
      ok: true,
      operation: { name: 'enroll' },
    })
    expect(resolveEnrollOperation('GET', '/v1/crl')).toEqual({
      ok: true,
      operation: { name: 'crl' },
    })
    for (const [method, path] of [
      ['GET', '/v1/keys'],
      ['POST', '/v1/crl'],
      ['POST', '/v1/keys/payments-signing/sign'],
      ['GET', '/v1/health'],
    ] as const) {
      expect(resolveEnrollOperation(method, path).ok).toBe(false)
    }
  })
})
