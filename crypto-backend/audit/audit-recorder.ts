import { createHash } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { resolveOperation } from '../../authz/operation.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { errorResponse } from '../error-handler.js'

/**
 * Writes the audit record of every request that passed the decision guard, after the route
 * produced its answer and before the answer leaves. When the record cannot be written the
 * answer is replaced by a 503, so no caller receives a result that the audit does not hold.
 */
export function auditRecorder(deps: BackendDeps): MiddlewareHandler<BackendEnv> {
  return async (c, next) => {
    const started = performance.now()
    // The route table authz decides with names the operation and key even when the body turns
    // out to be invalid and the route never reaches its own bookkeeping.
    const route = resolveOperation(c.req.method, c.env.incoming.url ?? '')
    const operation = route.ok ? route.operation : undefined
    c.set('audit', {
      operation: operation?.name ?? 'unknown',
      key: operation !== undefined && 'key' in operation ? operation.key : null,
      keyVersion: null,
      errorCode: null,
    })
    await next()

    const facts = c.get('audit')
    const status = c.res.status
    try {
      const record = await deps.audit.append({
        time: new Date().toISOString(),
        node: deps.nodeId,
        principal: c.get('principal'),
        // NOTE: the certificate serial and source address are known to authz only; its own
        // record under the same decision id holds them.
        certSerial: null,
        sourceAddress: null,
        decisionId: c.get('decisionId'),
        operation: facts.operation,
        key: facts.key,
        keyVersion: facts.keyVersion,
        outcome: status < 400 ? 'ok' : 'error',
        status,
        errorCode: facts.errorCode,
        policyIds: [],
        reason: null,
        requestDigest: createHash('sha256').update(c.get('body')).digest('hex'),
        latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
      })
      c.header('x-hsmgate-audit-seq', String(record.seq))
    } catch (error) {
      deps.logger.error(
        { err: error, decision_id: c.get('decisionId'), operation: facts.operation },
        'audit write failed; answer withheld',
      )
      c.res = errorResponse(
        c,
        503,
        'audit_unavailable',
        'the audit record could not be written, so the result is withheld',
        c.get('decisionId'),
      )
    }
  }
}
