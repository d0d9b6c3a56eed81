import { randomBytes } from 'node:crypto'
import type { Hono } from 'hono'
import type { BackendDeps, BackendEnv } from '../context.js'
import {
  additionalData,
  decodeEnvelope,
  encodeEnvelope,
  GCM_IV_BYTES,
  parseContext,
} from '../keys/aead-envelope.js'
import { ALGORITHMS } from '../keys/key-registry.js'
import { base64Field, enumField, parseJsonObject, rejectUnknownFields } from '../request-body.js'
import { keyContext } from './route-helpers.js'

/** Registers POST /v1/keys/:name/encrypt and /decrypt (AES-256-GCM with an encryption context). */
export function registerEncryptRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/encrypt', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['plaintext', 'context', 'algorithm'])
    const key = keyContext(c, deps, 'encrypt', 'aes-256')
    const algorithm = enumField(body, 'algorithm', ALGORITHMS['aes-256'], 'AES_256_GCM')
    const plaintext = base64Field(body, 'plaintext')
    const context = parseContext(body.context)

    // A random 96-bit IV per message; with one key, 2^32 messages keep the collision
    // probability below 2^-32 (NIST SP 800-38D, section 8.3).
    const iv = randomBytes(GCM_IV_BYTES)
    const aad = additionalData(key.name, key.version, context)
    const sealed = await deps.cluster.encryptAesGcm(Buffer.from(key.ckaId, 'hex'), {
      iv,
      aad,
      plaintext,
    })
    return c.json({
      key: key.name,
      version: key.version,
      algorithm,
      ciphertext: encodeEnvelope({ version: key.version, iv, sealed }).toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/decrypt', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['ciphertext', 'context', 'algorithm'])
    c.get('audit').operation = 'decrypt'
    enumField(body, 'algorithm', ALGORITHMS['aes-256'], 'AES_256_GCM')
    const envelope = decodeEnvelope(base64Field(body, 'ciphertext'))
    const context = parseContext(body.context)
    const key = keyContext(c, deps, 'decrypt', 'aes-256', envelope.version)

    const plaintext = await deps.cluster.decryptAesGcm(Buffer.from(key.ckaId, 'hex'), {
      iv: envelope.iv,
      aad: additionalData(key.name, key.version, context),
      ciphertext: envelope.sealed,
    })
    return c.json({
      key: key.name,
      version: key.version,
      plaintext: plaintext.toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })
}
