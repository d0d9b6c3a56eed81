import { createHash } from 'node:crypto'
import type { Hono } from 'hono'
import type { NonceLimits, Store } from '../../store/index.js'
import { ApiError, invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { DEFAULT_TPM_TRUST, issueNonce } from '../pki/tpm/index.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'

/** Unused nonces one enrollment token may hold: enough for an agent that retries a few times. */
const NONCES_PER_TOKEN = 4

/** Maximum token length, as POST /v1/enroll accepts it. */
const MAX_TOKEN_CHARS = 256

/**
 * Registers POST /v1/enroll/nonce on the enrollment listener: a fresh single-use nonce that a
 * TPM puts into TPM2_Certify as qualifying data, for `hsmgate agent enroll --tpm` and for TPM
 * renewals. Authz maps it to the `enroll` action of the enrollment service principal.
 *
 * The route needs no credential, so the number of unused nonces is bounded. A request with a
 * pending enrollment token in `token` may have 4 unused nonces. Every other request counts
 * against its client address (`pki.tpm_nonces_per_source`) and against all addresses together
 * (`pki.tpm_nonces_total`), so a flood from many addresses cannot use up the nonces of agents
 * that present a token. Expired unused nonces are deleted whenever a nonce is issued.
 */
export function registerEnrollNonceRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/enroll/nonce', async (c) => {
    c.get('audit').operation = 'enroll'
    const certificates = deps.clientCertificates
    if (certificates === undefined || c.get('principal') !== certificates.enrollmentPrincipal) {
      throw new ApiError(403, 'not_authorized', 'enrollment is not available to this caller')
    }
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['token'])
    const trust = deps.tpm ?? DEFAULT_TPM_TRUST
    const tokenHash = await pendingTokenHash(body.token, deps.store)
    const [source, limits]: [string, NonceLimits] =
      tokenHash === undefined
        ? [
            `addr:${c.get('sourceAddress') ?? 'unknown'}`,
            {
              perSource: trust.noncesPerSource,
              perPrefix: { prefix: 'addr:', max: trust.noncesTotal },
            },
          ]
        : [`token:${tokenHash}`, { perSource: NONCES_PER_TOKEN }]
    const issued = await issueNonce(deps.store.tpm, source, limits)
    return c.json({
      nonce: issued.nonce.toString('base64'),
      expires_at: issued.expiresAt.toISOString(),
      decision_id: c.get('decisionId'),
    })
  })
}

/**
 * Returns the SHA-256 of `token` when it is a pending enrollment token, undefined when the
 * request has none. A token that is unknown, used or expired is a 403, so that a client learns
 * that its token does not work before it creates a TPM key. The token itself is never stored.
 */
async function pendingTokenHash(
  token: unknown,
  store: Pick<Store, 'enrollmentToken'>,
): Promise<string | undefined> {
  if (token === undefined) return undefined
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
    throw invalidRequest("field 'token' must be the enrollment token text")
  }
  const hash = createHash('sha256').update(token, 'utf8').digest('hex')
  const pending = await store.enrollmentToken(hash)
  const now = new Date().toISOString()
  if (pending === undefined || pending.usedAt !== null || pending.expiresAt <= now) {
    throw new ApiError(
      403,
      'token_unknown',
      "the enrollment token is unknown, used or expired; create a new one with 'hsmgate tokens create'",
    )
  }
  return hash
}
