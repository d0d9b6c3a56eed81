import type { MiddlewareHandler } from 'hono'
import { verifyDecision } from '../authz/decision-header.js'
import { ApiError } from './api-error.js'
import type { BackendDeps, BackendEnv } from './context.js'

/**
 * Rejects every request that does not carry a valid decision header from authz: the HMAC must
 * cover this principal, method, path and body, be fresh, and not have been used before. A
 * process that reaches the backend socket directly therefore cannot forge an authorization.
 */
export function decisionGuard(deps: BackendDeps): MiddlewareHandler<BackendEnv> {
  const seen = new ReplayCache(deps.decisionMaxAgeMs * 2)

  return async (c, next) => {
    const principal = c.req.header('x-hsmgate-principal')
    const header = c.req.header('x-hsmgate-decision')
    const body = await readBody(c.env.incoming, deps.maxBodyBytes)
    const reject = (reason: string): never => {
      deps.logger.warn({ reason, path: c.env.incoming.url }, 'request without a valid decision')
      throw new ApiError(401, 'not_authorized', 'request did not pass the gateway authorization')
    }
    if (principal === undefined || header === undefined) return reject('missing decision headers')

    const request = { principal, method: c.req.method, path: c.env.incoming.url ?? '', body }
    const now = Date.now()
    const result = verifyDecision(deps.decisionSecret, header, request, now, deps.decisionMaxAgeMs)
    if (!result.ok) return reject(result.reason)
    if (!seen.add(result.decisionId)) return reject('decision id used twice')

    c.set('decisionId', result.decisionId)
    c.set('certSerial', result.certSerial)
    c.set('sourceAddress', result.sourceAddress)
    c.set('principal', principal)
    c.set('body', body)
    await next()
  }
}

async function readBody(incoming: NodeJS.ReadableStream, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of incoming) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
    size += buffer.length
    if (size > limit) {
      throw new ApiError(413, 'payload_too_large', `request body is larger than ${limit} bytes`)
    }
    chunks.push(buffer)
  }
  return Buffer.concat(chunks)
}

/** Remembers decision ids for `ttlMs`, long enough to outlive a decision's validity. */
class ReplayCache {
  private readonly expiries = new Map<string, number>()

  constructor(private readonly ttlMs: number) {}

  /** Records an id; returns false when it was already recorded. */
  add(id: string): boolean {
    const now = Date.now()
    this.prune(now)
    if (this.expiries.has(id)) return false
    this.expiries.set(id, now + this.ttlMs)
    return true
  }

  private prune(now: number): void {
    // Map iteration follows insertion order, so expired entries are at the front.
    for (const [id, expiry] of this.expiries) {
      if (expiry > now) break
      this.expiries.delete(id)
    }
  }
}
