import type { Hono } from 'hono'
import { ApiError, invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { sign, unwrapMaterial, verify, wrapMaterial } from '../hsm/key-operations.js'
import { MAC_ALGORITHMS } from '../keys/algorithms.js'
import { decodeVersioned, encodeVersioned } from '../keys/versioned-blob.js'
import { base64Field, enumField, parseJsonObject, rejectUnknownFields } from '../request-body.js'
import { keyContext, optionalVersion } from './route-helpers.js'
import type { KeyType, KeyVersion } from '../../store/index.js'

const MAC_TYPES = Object.keys(MAC_ALGORITHMS) as KeyType[]
/**
 * RFC 5649 wraps 1 byte and more, but SoftHSM2 2.6.1 pads other lengths with zero bytes to a
 * multiple of 8 before wrapping, so unwrap would return a longer value; the API therefore takes
 * multiples of 8 bytes only. The bounds keep wrap to key material, not bulk data.
 */
const MIN_MATERIAL_BYTES = 16
const MAX_MATERIAL_BYTES = 1024

function macFor(body: Record<string, unknown>, key: KeyVersion) {
  const mac = MAC_ALGORITHMS[key.type]
  if (mac === undefined) throw invalidRequest(`key '${key.name}' is not an HMAC key`)
  enumField(body, 'algorithm', [mac.name], mac.name)
  return mac
}

const secretOf = (key: KeyVersion) => ({
  id: Buffer.from(key.ckaId, 'hex'),
  part: 'secret' as const,
})

/** Registers POST /v1/keys/:name/hmac, /hmac-verify, /wrap and /unwrap. */
export function registerMacAndWrapRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/hmac', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['message', 'algorithm'])
    const key = await keyContext(c, deps, 'hmac', MAC_TYPES)
    const mac = macFor(body, key)
    const message = base64Field(body, 'message')
    const tag = await sign(deps.cluster, secretOf(key), { mechanism: mac.mechanism }, message)
    return c.json({
      key: key.name,
      version: key.version,
      algorithm: mac.name,
      mac: tag.toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/hmac-verify', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['message', 'mac', 'algorithm', 'version'])
    const key = await keyContext(c, deps, 'hmac-verify', MAC_TYPES, optionalVersion(body))
    const mac = macFor(body, key)
    const message = base64Field(body, 'message')
    const tag = base64Field(body, 'mac')
    const valid = await verify(
      deps.cluster,
      secretOf(key),
      { mechanism: mac.mechanism },
      message,
      tag,
    )
    return c.json({
      key: key.name,
      version: key.version,
      algorithm: mac.name,
      valid,
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/wrap', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['key_material', 'algorithm'])
    const key = await keyContext(c, deps, 'wrap', 'aes-256-wrap')
    enumField(body, 'algorithm', ['AES_KEY_WRAP_PAD'], 'AES_KEY_WRAP_PAD')
    const material = base64Field(body, 'key_material')
    const size = material.length
    if (size < MIN_MATERIAL_BYTES || size > MAX_MATERIAL_BYTES || size % 8 !== 0) {
      throw invalidRequest(
        `field 'key_material' is ${size} bytes; allowed: ${MIN_MATERIAL_BYTES} to ` +
          `${MAX_MATERIAL_BYTES} bytes in multiples of 8`,
      )
    }
    const wrapped = await wrapMaterial(deps.cluster, secretOf(key).id, material)
    return c.json({
      key: key.name,
      version: key.version,
      algorithm: 'AES_KEY_WRAP_PAD',
      wrapped: encodeVersioned('HW', key.version, wrapped).toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/unwrap', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['wrapped', 'algorithm'])
    c.get('audit').operation = 'unwrap'
    enumField(body, 'algorithm', ['AES_KEY_WRAP_PAD'], 'AES_KEY_WRAP_PAD')
    const blob = decodeVersioned('HW', base64Field(body, 'wrapped'), 'wrapped')
    const key = await keyContext(c, deps, 'unwrap', 'aes-256-wrap', blob.version)
    if (blob.body.length % 8 !== 0 || blob.body.length < 16) {
      throw new ApiError(400, 'decrypt_failed', "field 'wrapped' does not hold RFC 5649 output")
    }
    const material = await unwrapMaterial(deps.cluster, secretOf(key).id, blob.body)
    return c.json({
      key: key.name,
      version: key.version,
      key_material: material.toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })
}
