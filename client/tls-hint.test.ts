import { describe, expect, it } from 'vitest'
import { withTlsHint } from './tls-hint.js'

function tlsError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

describe('TLS hint', () => {
  it('names the enrollment port for a certificate required alert on enroll', () => {
    const error = withTlsHint(
      tlsError('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'tlsv13 alert certificate required'),
      'enroll',
    )
    expect(error.message).toContain('tlsv13 alert certificate required: ')
    expect(error.message).toContain('listen.enroll_port, 8444 by default')
    expect((error as NodeJS.ErrnoException).code).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')
  })

  it.each([
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'enroll again'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'revoked'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'expired'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'pki/trust-bundle.pem'],
  ])('explains %s', (code, text) => {
    expect(withTlsHint(tlsError(code, 'x'), 'mtls').message).toContain(text)
  })

  it('returns other errors unchanged', () => {
    const error = tlsError('ETIMEDOUT', 'timed out')
    expect(withTlsHint(error, 'mtls')).toBe(error)
  })
})
