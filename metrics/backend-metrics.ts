import type { MiddlewareHandler } from 'hono'
import { Counter, Histogram } from 'prom-client'
import { LATENCY_BUCKETS, UNKNOWN_LABEL, metricsRegistry } from './registry.js'

const requests = new Counter({
  name: 'hsmgate_backend_requests_total',
  help: 'Crypto backend requests by operation, key and HTTP status.',
  labelNames: ['operation', 'key', 'status'] as const,
  registers: [metricsRegistry],
})

const requestSeconds = new Histogram({
  name: 'hsmgate_backend_request_seconds',
  help: 'Time to serve one crypto backend request, HSM call and audit write included, in seconds.',
  labelNames: ['operation', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
})

/** Audit facts that the audit middleware stores on a request once it is served. */
interface AuditedRequest {
  get(name: 'audit'): { operation: string; key: string | null } | undefined
}

/**
 * Hono middleware that counts each request and observes its latency. It runs outside the
 * decision guard: a request that the guard rejects has no audit facts and is counted under the
 * operation '-', so a forged path cannot add label values. Keys are bounded because authz
 * allows only keys that exist (or, for create-key, keys that then exist).
 */
export function requestMetrics(): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now()
    await next()
    const facts = (c as unknown as AuditedRequest).get('audit')
    const status = String(c.res.status)
    const operation = facts?.operation ?? UNKNOWN_LABEL
    requests.inc({ operation, key: facts?.key ?? UNKNOWN_LABEL, status })
    requestSeconds.observe({ operation, status }, (performance.now() - started) / 1000)
  }
}
