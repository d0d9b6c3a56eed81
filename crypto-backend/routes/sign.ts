import { createHash } from 'node:crypto'
import type { Hono } from 'hono'
import { invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { derToRaw, rawToDer } from '../keys/ecdsa-signature.js'
import { ALGORITHMS } from '../keys/key-registry.js'
import {
  base64Field,
  enumField,
  optionalBase64Field,
  parseJsonObject,
  rejectUnknownFields,
} from '../request-body.js'
import { keyContext, optionalVersion } from './route-helpers.js'

const SHA256_BYTES = 32
const P256_BYTES = 32

/** Returns the SHA-256 digest to sign: of `message`, or `digest` as given. Exactly one of them. */
function digestOf(body: Record<string, unknown>): Buffer {
  const message = optionalBase64Field(body, 'message')
  const digest = optionalBase64Field(body, 'digest')
  if ((message === undefined) === (digest === undefined)) {
    throw invalidRequest("set exactly one of 'message' and 'digest' (both base64)")
  }
  if (digest !== undefined && digest.length !== SHA256_BYTES) {
    throw invalidRequest(
      `field 'digest' must be a SHA-256 digest of 32 bytes, got ${digest.length}`,
    )
  }
  return digest ?? createHash('sha256').update(message!).digest()
}

/** Registers POST /v1/keys/:name/sign and /verify (ECDSA P-256 with SHA-256). */
export function registerSignRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/sign', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['message', 'digest', 'algorithm'])
    const key = keyContext(c, deps, 'sign', 'ec-p256')
    const algorithm = enumField(body, 'algorithm', ALGORITHMS['ec-p256'], 'ECDSA_SHA_256')
    const raw = await deps.cluster.signEcdsa(Buffer.from(key.ckaId, 'hex'), digestOf(body))
    return c.json({
      key: key.name,
      version: key.version,
      algorithm,
      signature: rawToDer(raw).toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/verify', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['message', 'digest', 'signature', 'algorithm', 'version'])
    const key = keyContext(c, deps, 'verify', 'ec-p256', optionalVersion(body))
    const algorithm = enumField(body, 'algorithm', ALGORITHMS['ec-p256'], 'ECDSA_SHA_256')
    const digest = digestOf(body)
    const raw = derToRaw(base64Field(body, 'signature'), P256_BYTES)
    const valid =
      raw !== undefined &&
      (await deps.cluster.verifyEcdsa(Buffer.from(key.ckaId, 'hex'), digest, raw))
    return c.json({
      key: key.name,
      version: key.version,
      algorithm,
      valid,
      decision_id: c.get('decisionId'),
    })
  })
}
