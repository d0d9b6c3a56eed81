import type { Context, Hono } from 'hono'
import type { BackendDeps, BackendEnv } from '../context.js'
import { keyMetadata } from '../keys/key-registry.js'
import { applicationOf } from '../keys/key-namespace.js'
import { keyTypeOf, tagsOf } from '../../store/key-type-request.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'

/** Parses a body that may be empty (lifecycle requests other than create carry no fields). */
function emptyBody(body: Uint8Array): void {
  if (body.length === 0) return
  rejectUnknownFields(parseJsonObject(body), [])
}

/**
 * Returns the owner of a key that `principal` creates: the application name of an application
 * principal, else the principal itself, which the namespace check then rejects.
 */
function ownerOf(principal: string): string {
  return applicationOf(principal) ?? principal
}

/** Records the operation and key for the audit before anything can fail. */
function begin(c: Context<BackendEnv>, operation: string, name: string) {
  const audit = c.get('audit')
  audit.operation = operation
  audit.key = name
  return audit
}

/**
 * Registers the key lifecycle: POST /v1/keys/:name/create, /rotate, /disable, /enable and
 * /destroy. Each names its key in the path, so that policy decides on the key name. Create
 * accepts only a name in the caller's namespace, `<app>-...`, and records the caller as owner.
 */
export function registerLifecycleRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/create', async (c) => {
    const name = c.req.param('name')
    const audit = begin(c, 'create-key', name)
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['type', 'size', 'curve', 'tags'])
    const type = keyTypeOf(body)
    const tags = tagsOf(body)
    const key = await deps.lifecycle.create({
      name,
      type,
      tags,
      owner: ownerOf(c.get('principal')),
    })
    audit.keyVersion = key.version
    return c.json({ ...keyMetadata(key), decision_id: c.get('decisionId') }, 201)
  })

  app.post('/v1/keys/:name/rotate', async (c) => {
    const audit = begin(c, 'rotate-key', c.req.param('name'))
    emptyBody(c.get('body'))
    const key = await deps.lifecycle.rotate(c.req.param('name'))
    audit.keyVersion = key.version
    return c.json({ ...keyMetadata(key), decision_id: c.get('decisionId') })
  })

  for (const state of ['disable', 'enable'] as const) {
    app.post(`/v1/keys/:name/${state}`, async (c) => {
      begin(c, `${state}-key`, c.req.param('name'))
      emptyBody(c.get('body'))
      const target = state === 'disable' ? 'disabled' : 'enabled'
      const versions = await deps.lifecycle.setState(c.req.param('name'), target)
      return c.json({
        key: c.req.param('name'),
        state: target,
        versions: versions.map((v) => v.version),
        decision_id: c.get('decisionId'),
      })
    })
  }

  app.post('/v1/keys/:name/destroy', async (c) => {
    begin(c, 'destroy-key', c.req.param('name'))
    emptyBody(c.get('body'))
    const result = await deps.lifecycle.destroy(c.req.param('name'))
    return c.json({
      key: c.req.param('name'),
      state: 'destroyed',
      versions: result.versions,
      members_pending: result.unreachable,
      decision_id: c.get('decisionId'),
    })
  })
}
