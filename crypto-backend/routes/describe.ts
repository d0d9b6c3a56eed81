import { createPublicKey } from 'node:crypto'
import type { Hono } from 'hono'
import type { BackendDeps, BackendEnv } from '../context.js'
import { ApiError } from '../api-error.js'
import { keyMetadata } from '../keys/key-registry.js'

/**
 * Registers GET /v1/keys/:name[?version=N]: the newest (or the given) version's metadata and, for an asymmetric key that is
 * not destroyed, the public key read from the HSM as PEM.
 */
export function registerDescribeRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.get('/v1/keys/:name', async (c) => {
    const name = c.req.param('name')
    const audit = c.get('audit')
    audit.operation = 'describe-key'
    audit.key = name
    const versions = await deps.store.keyVersions(name)
    const wanted = c.req.query('version')
    const key =
      wanted === undefined ? versions[0] : versions.find((v) => String(v.version) === wanted)
    if (key === undefined) {
      const what = wanted === undefined ? '' : ` version ${wanted.slice(0, 12)}`
      throw new ApiError(
        404,
        'key_not_found',
        `key '${name}'${what} not found; GET /v1/keys lists keys`,
      )
    }
    audit.keyVersion = key.version

    let publicKeyPem: string | undefined
    if (
      key.state !== 'destroyed' &&
      !['aes-256', 'aes-256-wrap', 'hmac-sha256', 'hmac-sha384'].includes(key.type)
    ) {
      const spki = await deps.cluster.publicKeySpki(Buffer.from(key.ckaId, 'hex'))
      publicKeyPem = createPublicKey({ key: spki, format: 'der', type: 'spki' })
        .export({ type: 'spki', format: 'pem' })
        .toString()
    }
    return c.json({
      ...keyMetadata(key),
      public_key_pem: publicKeyPem,
      decision_id: c.get('decisionId'),
    })
  })
}
