import { describe, expect, it } from 'vitest'
import { checkClientLifetime } from './client-certificates.js'

describe('client certificate lifetime', () => {
  it('accepts five minutes and more', () => {
    expect(() => checkClientLifetime('5m')).not.toThrow()
    expect(() => checkClientLifetime('1h')).not.toThrow()
  })

  it('rejects a lifetime the agent would renew without pause', () => {
    expect(() => checkClientLifetime('30s')).toThrow(/pki.client_lifetime '30s' is shorter than 5m/)
    expect(() => checkClientLifetime('4m')).toThrow(RangeError)
  })
})
