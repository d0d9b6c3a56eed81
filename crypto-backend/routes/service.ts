import type { Hono } from 'hono'
import { invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { keyMetadata } from '../keys/key-registry.js'
import { applicationOf } from '../keys/key-namespace.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'

const MAX_RANDOM_BYTES = 1024

/**
 * Registers the routes that use no named key: GET /v1/keys (the caller's own keys),
 * POST /v1/random and GET /v1/health.
 */
export function registerServiceRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.get('/v1/keys', async (c) => {
    c.get('audit').operation = 'list-keys'
    // Each application gets only the keys it owns. NOTE: a key that a policy lets the caller
    // use but that another application owns is not listed, because the backend does not
    // evaluate policies; such a key can still be described by name.
    const app = applicationOf(c.get('principal'))
    const keys = (await deps.store.listKeys())
      .filter((key) => app !== undefined && key.owner === app)
      .map(keyMetadata)
    return c.json({ keys, decision_id: c.get('decisionId') })
  })

  app.post('/v1/random', async (c) => {
    c.get('audit').operation = 'random'
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['length'])
    const length = body.length
    if (typeof length !== 'number' || !Number.isInteger(length)) {
      throw invalidRequest(`field 'length' must be an integer from 1 to ${MAX_RANDOM_BYTES}`)
    }
    if (length < 1 || length > MAX_RANDOM_BYTES) {
      throw invalidRequest(`field 'length' is ${length}; allowed: 1 to ${MAX_RANDOM_BYTES}`)
    }
    const random = await deps.cluster.random(length)
    return c.json({ random: random.toString('base64'), decision_id: c.get('decisionId') })
  })

  app.get('/v1/health', async (c) => {
    c.get('audit').operation = 'health'
    // One real HSM call proves that a member answers, not only that the process runs.
    await deps.cluster.random(1)
    const members = deps.cluster.status()
    const healthy = members.some((m) => m.state === 'healthy')
    return c.json({ healthy, members, decision_id: c.get('decisionId') }, healthy ? 200 : 503)
  })
}
