import { createHash } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
import { resolveOperation } from '../../authz/operation.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { errorResponse } from '../error-handler.js'
import { RECEIPT_HEADERS, receiptOf } from '../../store/audit-receipt.js'
import type { AuditRecord } from '../../store/store.js'
import { RepeatLimiter } from '../../log/repeat-limiter.js'

/**
 * Writes the audit record of every request that passed the decision guard, after the route
 * produced its answer and before the answer leaves. When the record cannot be written the
 * answer is replaced by a 503, so no caller receives a result that the audit does not hold.
 */
export function auditRecorder(deps: BackendDeps): MiddlewareHandler<BackendEnv> {
  // A store that fails, fails every request; repeats within a minute become one summary line.
  const failures = new RepeatLimiter(deps.logger)
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
        // authz bound these into the decision header, which the decision guard verified.
        certSerial: c.get('certSerial'),
        sourceAddress: c.get('sourceAddress'),
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
      setReceiptHeaders(c, record)
    } catch (error) {
      const cause =
        error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.name) : ''
      failures.error(
        `audit:${cause}`,
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

/**
 * Sets the receipt of the record on the response: the decision id, the writer, seq and hash as
 * separate headers, and all of them as one JSON value that an application can keep.
 */
function setReceiptHeaders(c: Context<BackendEnv>, record: AuditRecord): void {
  c.header(RECEIPT_HEADERS.decisionId, record.decisionId)
  c.header(RECEIPT_HEADERS.writer, record.node)
  c.header(RECEIPT_HEADERS.seq, String(record.seq))
  c.header(RECEIPT_HEADERS.hash, record.hash)
  c.header(RECEIPT_HEADERS.receipt, JSON.stringify(receiptOf(record)))
}
