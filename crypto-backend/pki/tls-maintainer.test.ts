import { describe, expect, it } from 'vitest'
import { renewalTime } from './tls-maintainer.js'
import { checkServingLifetime } from './tls-publisher.js'

describe('serving certificate schedule', () => {
  it('renews after two thirds of the time from issue to expiry', () => {
    const issued = new Date('2026-01-01T00:00:00Z')
    const expires = new Date('2026-01-02T00:00:00Z')
    expect(new Date(renewalTime(issued, expires, 2 / 3)).toISOString()).toBe(
      '2026-01-01T16:00:00.000Z',
    )
  })

  it('refuses a lifetime too short for the backdated notBefore', () => {
    expect(() => checkServingLifetime('90s')).toThrow(/'90s' is shorter than 5m; set at least 5m/)
    expect(() => checkServingLifetime('24h')).not.toThrow()
  })
})
