import type { Hono } from 'hono'
import { invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { sign, verify } from '../hsm/key-operations.js'
import { digest, hashLength, SIGN_ALGORITHMS, type SignAlgorithm } from '../keys/algorithms.js'
import { derToRaw, rawToDer } from '../keys/ecdsa-signature.js'
import {
  base64Field,
  enumField,
  optionalBase64Field,
  parseJsonObject,
  rejectUnknownFields,
} from '../request-body.js'
import { keyContext, optionalVersion } from './route-helpers.js'
import type { KeyType, KeyVersion } from '../../store/index.js'

const SIGNING_TYPES = Object.keys(SIGN_ALGORITHMS) as KeyType[]
const FORMATS = ['der', 'raw'] as const

/** Picks the algorithm named in `algorithm`, or the key type's default; others are a 400. */
function algorithmFor(body: Record<string, unknown>, key: KeyVersion): SignAlgorithm {
  const list = SIGN_ALGORITHMS[key.type] ?? []
  const names = list.map((algorithm) => algorithm.name)
  const name = enumField(body, 'algorithm', names, names[0] ?? '')
  const algorithm = list.find((candidate) => candidate.name === name)
  if (algorithm === undefined) throw invalidRequest(`key '${key.name}' cannot sign`)
  return algorithm
}

/** Returns the input of C_Sign from exactly one of `message` and `digest`. */
function signInput(body: Record<string, unknown>, algorithm: SignAlgorithm): Buffer {
  const message = optionalBase64Field(body, 'message')
  const given = optionalBase64Field(body, 'digest')
  if ((message === undefined) === (given === undefined)) {
    throw invalidRequest("set exactly one of 'message' and 'digest' (both base64)")
  }
  if (algorithm.hash === null) {
    if (message === undefined) {
      throw invalidRequest(
        `${algorithm.name} signs the message itself; send 'message', not 'digest'`,
      )
    }
    return algorithm.input(message)
  }
  const length = hashLength(algorithm.hash)
  if (given !== undefined && given.length !== length) {
    throw invalidRequest(
      `field 'digest' must be a ${algorithm.hash.toUpperCase()} digest of ${length} bytes for ` +
        `${algorithm.name}, got ${given.length}`,
    )
  }
  return algorithm.input(given ?? digest(algorithm.hash, message as Buffer))
}

/** Reads `signature_format`: 'der' (default) or 'raw' r||s, which only ECDSA has. */
function formatOf(body: Record<string, unknown>, algorithm: SignAlgorithm): 'der' | 'raw' {
  const format = enumField(body, 'signature_format', FORMATS, 'der')
  if (format === 'raw' && algorithm.ecdsaSize === undefined) {
    throw invalidRequest(`field 'signature_format' applies to ECDSA only, not ${algorithm.name}`)
  }
  return format
}

const idOf = (key: KeyVersion) => Buffer.from(key.ckaId, 'hex')

/** Registers POST /v1/keys/:name/sign and /verify (ECDSA, Ed25519, RSA-PSS, RSA PKCS#1 v1.5). */
export function registerSignRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/sign', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['message', 'digest', 'algorithm', 'signature_format'])
    const key = await keyContext(c, deps, 'sign', SIGNING_TYPES)
    const algorithm = algorithmFor(body, key)
    const format = formatOf(body, algorithm)
    const input = signInput(body, algorithm)
    const part = { id: idOf(key), part: 'private' as const }
    const signature = await sign(deps.cluster, part, algorithm.mechanism, input)
    const encoded =
      algorithm.ecdsaSize !== undefined && format === 'der' ? rawToDer(signature) : signature
    return c.json({
      key: key.name,
      version: key.version,
      algorithm: algorithm.name,
      signature_format: algorithm.ecdsaSize === undefined ? undefined : format,
      signature: encoded.toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/verify', async (c) => {
    const body = parseJsonObject(c.get('body'))
    const known = ['message', 'digest', 'signature', 'algorithm', 'version', 'signature_format']
    rejectUnknownFields(body, known)
    const key = await keyContext(c, deps, 'verify', SIGNING_TYPES, optionalVersion(body))
    const algorithm = algorithmFor(body, key)
    const format = formatOf(body, algorithm)
    const input = signInput(body, algorithm)
    let signature: Buffer | undefined = base64Field(body, 'signature')
    if (algorithm.ecdsaSize !== undefined && format === 'der') {
      signature = derToRaw(signature, algorithm.ecdsaSize)
    }
    const part = { id: idOf(key), part: 'public' as const }
    const valid =
      signature !== undefined &&
      (await verify(deps.cluster, part, algorithm.mechanism, input, signature))
    return c.json({
      key: key.name,
      version: key.version,
      algorithm: algorithm.name,
      valid,
      decision_id: c.get('decisionId'),
    })
  })
}
