import { describe, expect, it } from 'vitest'
import type { IssuedCertificate } from '../store/store.js'
import { revocationDeny } from './revocation.js'

function record(serial: string, status: 'active' | 'revoked'): IssuedCertificate {
  return {
    serial,
    app: 'reporting',
    host: 'localhost',
    addresses: [],
    notBefore: '2026-01-01T00:00:00Z',
    notAfter: '2027-01-01T00:00:00Z',
    keyProtection: 'software',
    status,
    revokedAt: status === 'revoked' ? '2026-06-01T00:00:00Z' : null,
    revocationReason: null,
    issuedAt: '2026-01-01T00:00:00Z',
  }
}

const lookup = (records: IssuedCertificate[]) => ({
  certificate: async (serial: string) => records.find((r) => r.serial === serial),
})

describe('revocationDeny', () => {
  it('denies a revoked serial, looked up in lowercase hex without leading zero bytes', async () => {
    const deny = await revocationDeny(lookup([record('0a1b', 'revoked')]), '000A1B')
    expect(deny).toMatchObject({ status: 401, code: 'certificate_revoked' })
    expect(deny?.message).toContain('0a1b')
  })

  it('passes an active certificate and one the store does not know', async () => {
    const store = lookup([record('0a1b', 'active')])
    expect(await revocationDeny(store, '0A1B')).toBeUndefined()
    expect(await revocationDeny(store, 'FFFF')).toBeUndefined()
    expect(await revocationDeny(undefined, '0A1B')).toBeUndefined()
  })
})
