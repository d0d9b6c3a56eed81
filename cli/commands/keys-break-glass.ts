import { createHash, randomBytes } from 'node:crypto'
import { userInfo } from 'node:os'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import type { KeysSession } from './keys-session.js'

/** Longest --reason of a break-glass destroy, in characters. */
const MAX_REASON_LENGTH = 500

export interface BreakGlassOptions {
  'break-glass': boolean
  reason?: string
}

/**
 * Checks that a local `keys destroy` states its bypass of dual control: `--break-glass` and a
 * non-empty `--reason`. Returns the trimmed reason; throws CliError with exit code 2 otherwise.
 */
export function breakGlassReason(name: string, options: BreakGlassOptions): string {
  if (!options['break-glass']) {
    throw new CliError(
      `keys destroy on the gateway host bypasses the dual control that POST /v1/keys/${name}/` +
        'destroy requires; destroy the key through the API with approvals, or pass ' +
        "--break-glass --reason 'TEXT' to destroy it now with an audit record that names your " +
        'OS user and the reason',
      EXIT.usage,
    )
  }
  const reason = options.reason?.trim() ?? ''
  if (reason === '' || reason.length > MAX_REASON_LENGTH) {
    throw new CliError(
      `--break-glass needs --reason 'TEXT' of 1 to ${MAX_REASON_LENGTH} characters that says ` +
        'why the key is destroyed without dual control',
      EXIT.usage,
    )
  }
  return reason
}

/** Returns the operating system user running this command, as `os-user:NAME(uid=N)`. */
function operator(): string {
  const user = userInfo()
  return `os-user:${user.username}(uid=${user.uid})`
}

/**
 * Destroys a key without dual control, after appending an audit record to the chain of this
 * node's backend writer (`node_id`) that names the OS user and the reason. No audit record, no
 * destroy: a failed append leaves the key as it was. A destroy that fails afterwards appends a
 * second record with outcome `error`.
 */
export async function breakGlassDestroy(
  session: KeysSession,
  name: string,
  reason: string,
  logger: Logger,
): Promise<unknown> {
  const versions = await session.store.keyVersions(name)
  if (versions.length === 0) throw new CliError(`key '${name}' not found; run 'hsmgate keys list'`)
  const principal = operator()
  const decisionId = `d_${randomBytes(16).toString('base64url')}`
  const started = performance.now()
  const entry = (outcome: 'ok' | 'error', errorCode: string | null) => ({
    time: new Date().toISOString(),
    node: session.config.node_id,
    principal,
    certSerial: null,
    sourceAddress: null,
    decisionId,
    operation: 'destroy-key',
    key: name,
    keyVersion: versions[0]!.version,
    outcome,
    status: outcome === 'ok' ? 200 : 500,
    errorCode,
    policyIds: ['break-glass'],
    reason: `break-glass: ${reason}`,
    requestDigest: createHash('sha256')
      .update(JSON.stringify({ key: name, principal, reason }))
      .digest('hex'),
    latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
  })
  const record = await session.store.appendAudit(entry('ok', null))
  logger.warn(
    { key: name, principal, decision_id: decisionId, audit_seq: record.seq },
    'break-glass destroy without dual control',
  )
  try {
    const result = await session.lifecycle!.destroy(name)
    return { ...result, break_glass: { principal, decision_id: decisionId, audit_seq: record.seq } }
  } catch (error) {
    await session.store.appendAudit(entry('error', 'destroy_failed'))
    throw error
  }
}
