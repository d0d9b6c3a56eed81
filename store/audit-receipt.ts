import type { AuditRecord } from './store.js'

/** Response headers that locate an operation's audit record in the writer's chain. */
export const RECEIPT_HEADERS = {
  /** The whole receipt as compact JSON, to keep as one value. */
  receipt: 'x-hsmgate-audit-receipt',
  decisionId: 'x-hsmgate-decision-id',
  writer: 'x-hsmgate-audit-writer',
  seq: 'x-hsmgate-audit-seq',
  hash: 'x-hsmgate-audit-hash',
} as const

/**
 * Proof material an application keeps for one operation: the decision id and the position and
 * hash of the backend's audit record. `hsmgate audit verify --receipt` checks it against the log.
 */
export interface AuditReceipt {
  version: 1
  decision_id: string
  writer: string
  seq: number
  hash: string
}

/** A receipt that is not valid JSON or lacks a field; the message names the field. */
export class ReceiptError extends Error {
  readonly code = 'receipt_invalid'

  constructor(message: string) {
    super(message)
    this.name = 'ReceiptError'
  }
}

/** Returns the receipt of a stored record. */
export function receiptOf(record: AuditRecord): AuditReceipt {
  return {
    version: 1,
    decision_id: record.decisionId,
    writer: record.node,
    seq: record.seq,
    hash: record.hash,
  }
}

/** Parses a receipt from its JSON text. Throws ReceiptError naming the first invalid field. */
export function parseReceipt(text: string): AuditReceipt {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new ReceiptError(`receipt is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ReceiptError('receipt must be a JSON object')
  }
  const fields = value as Record<string, unknown>
  if (fields.version !== 1) {
    throw new ReceiptError(
      `receipt field 'version' must be 1, got ${JSON.stringify(fields.version)}`,
    )
  }
  const textField = (name: string, pattern: RegExp): string => {
    const field = fields[name]
    if (typeof field !== 'string' || !pattern.test(field)) {
      throw new ReceiptError(
        `receipt field '${name}' is missing or invalid, got ${JSON.stringify(field)}`,
      )
    }
    return field
  }
  const seq = fields.seq
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    throw new ReceiptError(`receipt field 'seq' must be a positive integer, got ${String(seq)}`)
  }
  return {
    version: 1,
    decision_id: textField('decision_id', /^[A-Za-z0-9_-]{1,64}$/),
    writer: textField('writer', /^[a-z0-9][a-z0-9/-]{0,127}$/),
    seq,
    hash: textField('hash', /^[0-9a-f]{64}$/),
  }
}
