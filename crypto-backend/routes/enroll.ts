import { createHash } from 'node:crypto'
import type { Hono } from 'hono'
import { ApiError, invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { checkCsr } from '../pki/csr-check.js'
import { attestedProtection } from '../pki/tpm/attested-protection.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'
import { registerEnrollNonceRoute } from './enroll-nonce.js'

/** Errors for a token that cannot be redeemed. None reveals which application it names. */
const TOKEN_ERRORS = {
  unknown: new ApiError(403, 'token_unknown', 'the enrollment token is not known to this gateway'),
  used: new ApiError(
    403,
    'token_used',
    'the enrollment token was already used, and each token enrolls once; ' +
      "create a new one with 'hsmgate tokens create'",
  ),
  expired: new ApiError(
    403,
    'token_expired',
    "the enrollment token has expired; create a new one with 'hsmgate tokens create'",
  ),
} as const

/** Maximum token length; tokens from `hsmgate tokens create` are 54 characters. */
const MAX_TOKEN_CHARS = 256

/**
 * Registers POST /v1/enroll. Authz allows it only on the enrollment listener, as the service
 * principal `enrollment`. The body is `{ token, csr }`. The CSR is checked first, so that a bad
 * CSR does not use up the token. Then the token is redeemed once, atomically, by its SHA-256, and
 * a certificate is issued whose names come from the token, never from the CSR. The token itself is
 * never logged or stored. With an optional `tpm` attestation of the CSR key, verified before the
 * token is redeemed, the certificate records key protection 'tpm'. Also registers the nonce route
 * that such an attestation needs.
 */
export function registerEnrollRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  registerEnrollNonceRoute(app, deps)
  app.post('/v1/enroll', async (c) => {
    c.get('audit').operation = 'enroll'
    const certificates = deps.clientCertificates
    if (certificates === undefined || c.get('principal') !== certificates.enrollmentPrincipal) {
      throw new ApiError(403, 'not_authorized', 'enrollment is not available to this caller')
    }
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['token', 'csr', 'tpm'])
    const token = body.token
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
      throw invalidRequest("field 'token' must be the enrollment token text")
    }
    const csr = await checkCsr(body.csr)
    const hash = createHash('sha256').update(token, 'utf8').digest('hex')
    // The token is only read here, to attest against its host; the redemption below decides.
    const pending = await deps.store.enrollmentToken(hash)
    const outcome =
      pending === undefined || pending.usedAt !== null
        ? { protection: 'software' as const }
        : await attestedProtection(
            body.tpm,
            csr.publicKeySpki,
            deps.store.tpm,
            { host: pending.host, decisionId: c.get('decisionId'), logger: deps.logger },
            deps.tpm,
          )
    // The EK certificate path answers the first request with a challenge and redeems nothing.
    if ('challenge' in outcome) {
      return c.json({ activation: outcome.challenge, decision_id: c.get('decisionId') })
    }
    const protection = outcome.protection
    const redemption = await deps.store.redeemEnrollmentToken(hash, new Date().toISOString())
    if (!redemption.ok) {
      deps.logger.warn(
        { decision_id: c.get('decisionId'), reason: redemption.reason },
        'enrollment token rejected',
      )
      throw TOKEN_ERRORS[redemption.reason]
    }
    const binding = redemption.token
    const issued = await certificates.issue(binding, csr.publicKeySpki, protection)
    deps.logger.info(
      {
        decision_id: c.get('decisionId'),
        app: binding.app,
        host: binding.host,
        serial: issued.serial,
        key_protection: protection,
      },
      'client certificate issued by enrollment',
    )
    return c.json({
      certificate: issued.chainPem,
      serial: issued.serial,
      not_before: issued.notBefore.toISOString(),
      not_after: issued.notAfter.toISOString(),
      decision_id: c.get('decisionId'),
    })
  })
}
