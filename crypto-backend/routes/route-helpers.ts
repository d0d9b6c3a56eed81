import type { Context } from 'hono'
import { invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import type { KeyType, KeyVersion } from '../../store/index.js'

/**
 * Records the operation and key for the audit, then resolves the key named in the path. The
 * audit names the key even when resolution fails, so denied lookups are visible too.
 */
export async function keyContext(
  c: Context<BackendEnv>,
  deps: BackendDeps,
  operation: string,
  type: KeyType | readonly KeyType[],
  version?: number,
): Promise<KeyVersion> {
  const name = c.req.param('name') ?? ''
  const audit = c.get('audit')
  audit.operation = operation
  audit.key = name
  const key = await deps.keys.resolve(name, type, version)
  audit.keyVersion = key.version
  return key
}

/** Reads the optional positive integer `version` field. */
export function optionalVersion(body: Record<string, unknown>): number | undefined {
  const value = body.version
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw invalidRequest(`field 'version' must be a positive integer, got ${JSON.stringify(value)}`)
  }
  return value
}
