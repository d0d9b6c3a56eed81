import type { Hono } from 'hono'
import { invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { parseContext } from '../keys/aead-envelope.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'
import { encryptAes } from './encrypt.js'
import { keyContext } from './route-helpers.js'

const DATA_KEY_BYTES = [16, 24, 32]

/**
 * Registers POST /v1/keys/:name/data-key: a fresh data key from the HSM's random generator,
 * returned in plaintext and encrypted under the named AES-256 key (the same ciphertext format as
 * encrypt, so POST /decrypt with the same context recovers it).
 */
export function registerDataKeyRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/data-key', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['bytes', 'context'])
    const key = await keyContext(c, deps, 'data-key', 'aes-256')
    const bytes = body.bytes ?? 32
    if (typeof bytes !== 'number' || !DATA_KEY_BYTES.includes(bytes)) {
      throw invalidRequest(`field 'bytes' is ${JSON.stringify(bytes)}; allowed: 16, 24, 32`)
    }
    const context = parseContext(body.context)
    const plaintext = await deps.cluster.random(bytes)
    try {
      const ciphertext = await encryptAes(deps, key, plaintext, context)
      return c.json({
        key: key.name,
        version: key.version,
        plaintext: plaintext.toString('base64'),
        ciphertext: ciphertext.toString('base64'),
        decision_id: c.get('decisionId'),
      })
    } finally {
      plaintext.fill(0)
    }
  })
}
