import { describe, expect, it } from 'vitest'
import { clientAddress, trustedProxies } from './client-address.js'

describe('clientAddress', () => {
  const proxies = trustedProxies(['10.0.0.0/8', 'fd00::/8'])

  it('ignores x-forwarded-for from a peer that is not a trusted proxy', () => {
    expect(clientAddress('192.0.2.7', '127.0.0.1', proxies)).toBe('192.0.2.7')
    expect(clientAddress('192.0.2.7', undefined, trustedProxies([]))).toBe('192.0.2.7')
  })

  it('takes the rightmost untrusted entry behind trusted proxies', () => {
    // Envoy appends the peer it saw; the client may prepend anything it likes.
    expect(clientAddress('10.1.1.1', '198.51.100.9, 192.0.2.7, 10.2.2.2, 10.1.1.1', proxies)).toBe(
      '192.0.2.7',
    )
    expect(clientAddress('fd00::1', '2001:db8::5', proxies)).toBe('2001:db8::5')
  })

  it('falls back to the peer when every entry is trusted or the header is absent', () => {
    expect(clientAddress('10.1.1.1', '10.3.3.3', proxies)).toBe('10.1.1.1')
    expect(clientAddress('10.1.1.1', undefined, proxies)).toBe('10.1.1.1')
  })

  it('returns a malformed entry as is, so it matches no host', () => {
    expect(clientAddress('10.1.1.1', 'not-an-ip', proxies)).toBe('not-an-ip')
  })

  it('rejects a malformed CIDR', () => {
    expect(() => trustedProxies(['10.0.0.0'])).toThrow(/CIDR/)
    expect(() => trustedProxies(['example/8'])).toThrow(/CIDR/)
  })
})
