import { readFileSync } from 'node:fs'
import type { Hono } from 'hono'
import { ApiError } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'

/**
 * Registers GET /v1/crl: the current CRL in DER (application/pkix-crl), the form RFC 5280
 * section 4.2.1.13 expects at an HTTP distribution point. The file is the one the backend
 * publishes for Envoy, so both always carry the same revocations.
 */
export function registerCrlRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.get('/v1/crl', (c) => {
    c.get('audit').operation = 'crl'
    if (deps.crlFile === undefined) {
      throw new ApiError(503, 'hsm_unavailable', 'no CRL has been published yet')
    }
    let pem: string
    try {
      pem = readFileSync(deps.crlFile, 'utf8')
    } catch (error) {
      throw new ApiError(503, 'hsm_unavailable', 'no CRL has been published yet', { cause: error })
    }
    const base64 = pem.replace(/-----(BEGIN|END) X509 CRL-----/g, '').replace(/\s+/g, '')
    return c.body(Buffer.from(base64, 'base64'), 200, { 'content-type': 'application/pkix-crl' })
  })
}
