import { createHash, randomBytes } from 'node:crypto'
import type { NonceLimits, TpmRecords } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'

/** Nonce size: the SHA-256 digest size, which TPM2_Certify accepts as qualifying data. */
const NONCE_BYTES = 32

/** How long a client has to certify its key and send the enrollment or renewal request. */
export const NONCE_LIFETIME_MS = 5 * 60_000

/** A fresh attestation nonce. */
export interface IssuedNonce {
  readonly nonce: Buffer
  readonly expiresAt: Date
}

/**
 * Creates a random nonce for `source` and stores its SHA-256 with an expiry of five minutes,
 * unless `source` or all sources together already hold as many unexpired, unused nonces as
 * `limits` allow. Throws ApiError 429 nonce_limit then.
 */
export async function issueNonce(
  records: Pick<TpmRecords, 'putNonce'>,
  source: string,
  limits: NonceLimits,
  now = new Date(),
): Promise<IssuedNonce> {
  const nonce = randomBytes(NONCE_BYTES)
  const expiresAt = new Date(now.getTime() + NONCE_LIFETIME_MS)
  const hash = createHash('sha256').update(nonce).digest('hex')
  const put = await records.putNonce(
    hash,
    now.toISOString(),
    expiresAt.toISOString(),
    source,
    limits,
  )
  if (put.ok) return { nonce, expiresAt }
  const scope =
    put.reason === 'source_limit'
      ? `this client already holds ${limits.perSource} unused nonces`
      : 'the gateway holds the maximum number of unused nonces'
  throw new ApiError(
    429,
    'nonce_limit',
    `${scope}; use them or retry after they expire (at most 5 minutes). An agent that ` +
      "enrolls sends its enrollment token in 'token' to get a nonce of its own",
  )
}
