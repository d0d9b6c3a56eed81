/** What the agent was doing when a connection failed, which decides the advice. */
export type GatewayCall = 'enroll' | 'mtls'

const CA_HINT =
  "--ca does not hold the CA that issued the gateway's serving certificate; pass the setup's " +
  'pki/trust-bundle.pem (for a setup from hsmgate init, pki/ca.crt holds the same root)'

/** Advice per Node.js error code of a TLS alert, a certificate check or a connection failure. */
const HINTS: Record<string, (call: GatewayCall) => string> = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: (call) =>
    call === 'enroll'
      ? 'the gateway asked for a client certificate, so --gateway names its mutual TLS ' +
        'listener (listen.port, 8443 by default); enroll against the enrollment listener ' +
        '(listen.enroll_port, 8444 by default), such as --gateway https://HOST:8444'
      : 'the gateway requires a client certificate and none was sent',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: () =>
    "the gateway does not trust the issuer of this host's client certificate: it comes from " +
    "another setup or from a CA that 'hsmgate ca import' replaced; enroll again with a new token",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: () =>
    "the gateway's CRL lists this host's client certificate as revoked; enroll again with a " +
    "new token from 'hsmgate tokens create'",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: () =>
    "this host's client certificate has expired; enroll again with a new token from " +
    "'hsmgate tokens create'",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: () =>
    "the gateway rejected this host's client certificate; check that it is the newest one, " +
    'or enroll again',
  SELF_SIGNED_CERT_IN_CHAIN: () => CA_HINT,
  DEPTH_ZERO_SELF_SIGNED_CERT: () => CA_HINT,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: () => CA_HINT,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: () => CA_HINT,
  ERR_TLS_CERT_ALTNAME_INVALID: () =>
    "the gateway's serving certificate does not name the host in --gateway; use the address " +
    'or name the gateway listens on (listen.address in its hsmgate.yaml)',
  ECONNREFUSED: (call) =>
    call === 'enroll'
      ? 'nothing listens there; the enrollment listener is listen.enroll_port of the gateway ' +
        '(8444 by default) on listen.address'
      : 'nothing listens there; the mutual TLS listener is listen.port of the gateway (8443 by ' +
        'default) on listen.address',
}

/**
 * Returns the error with advice appended to its message when its code is a TLS alert or a
 * connection failure the agent can explain; otherwise the error itself. The result keeps the
 * original `code`, so callers that branch on it behave the same.
 */
export function withTlsHint(error: Error, call: GatewayCall): Error {
  const code = (error as NodeJS.ErrnoException).code
  const hint = code === undefined ? undefined : HINTS[code]?.(call)
  if (hint === undefined) return error
  return Object.assign(new Error(`${error.message}: ${hint}`, { cause: error }), { code })
}
