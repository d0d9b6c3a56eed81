import { DEFAULT_FACTS } from '../../authz/policy-cases.js'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ContextFacts, PolicyRequest } from '../../authz/policy-request.js'
import type { Application, KeyVersion } from '../../store/store.js'

/** A registered application as the store returns it. */
export function application(name: string, overrides: Partial<Application> = {}): Application {
  return {
    name,
    team: 'demo',
    hosts: ['localhost'],
    addresses: ['127.0.0.1'],
    suspended: false,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  }
}

/** Version 1 of a key owned by `owner`. */
export function keyVersion(name: string, owner: string, overrides: Partial<KeyVersion> = {}) {
  const key: KeyVersion = {
    name,
    version: 1,
    type: 'ec-p256',
    ckaId: '00',
    label: `hsmgate:${name}:v1`,
    state: 'enabled',
    owner,
    tags: ['demo'],
    classification: 'confidential',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  }
  return key
}

/** Context facts of an ordinary request on a weekday at noon UTC. */
export function facts(overrides: Partial<ContextFacts> = {}): ContextFacts {
  return { ...DEFAULT_FACTS, ...overrides }
}

/** A request by application `app` for `action`, on `key` when given. */
export function appRequest(
  app: Application,
  action: string,
  key?: KeyVersion,
  context: Partial<ContextFacts> = {},
): PolicyRequest {
  return {
    principal: { kind: 'application', application: app },
    action,
    ...(key === undefined ? {} : { key }),
    context: facts(context),
  }
}

/** Writes policy files into a new temporary directory and returns it. */
export function policyDirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-policies-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}
