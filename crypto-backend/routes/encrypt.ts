import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import type { Context } from 'hono'
import type { Hono } from 'hono'
import pkcs11js from 'pkcs11js'
import { ApiError } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { decryptWithPrivateKey } from '../hsm/key-operations.js'
import {
  additionalData,
  decodeEnvelope,
  encodeEnvelope,
  GCM_IV_BYTES,
  parseContext,
} from '../keys/aead-envelope.js'
import { ENCRYPT_ALGORITHMS } from '../keys/algorithms.js'
import { oaepDecode } from '../keys/rsa-oaep.js'
import { decodeVersioned, encodeVersioned } from '../keys/versioned-blob.js'
import { base64Field, enumField, parseJsonObject, rejectUnknownFields } from '../request-body.js'
import { keyContext, optionalVersion } from './route-helpers.js'
import type { KeyType, KeyVersion } from '../../store/index.js'

const TYPES = Object.keys(ENCRYPT_ALGORITHMS) as KeyType[]
const RSA_TYPES: KeyType[] = ['rsa-2048', 'rsa-3072', 'rsa-4096']
const isRsa = (key: KeyVersion) => RSA_TYPES.includes(key.type)
const modulusBytes = (key: KeyVersion) => Number(key.type.slice(4)) / 8

function checkAlgorithm(body: Record<string, unknown>, key: KeyVersion): string {
  const name = ENCRYPT_ALGORITHMS[key.type] ?? ''
  return enumField(body, 'algorithm', [name], name)
}

const failed = () =>
  new ApiError(400, 'decrypt_failed', 'decryption failed: the ciphertext does not fit this key')

/** AES-256-GCM under the HSM key, with the context bound as additional data. */
export async function encryptAes(
  deps: BackendDeps,
  key: KeyVersion,
  plaintext: Buffer,
  context: object,
) {
  // A random 96-bit IV per message; with one key, 2^32 messages keep the collision
  // probability below 2^-32 (NIST SP 800-38D, section 8.3).
  const iv = randomBytes(GCM_IV_BYTES)
  const aad = additionalData(key.name, key.version, context as Record<string, string>)
  const sealed = await deps.cluster.encryptAesGcm(Buffer.from(key.ckaId, 'hex'), {
    iv,
    aad,
    plaintext,
  })
  return encodeEnvelope({ version: key.version, iv, sealed })
}

/**
 * RSA-OAEP with SHA-256 and an empty label under the public key read from the HSM. Encryption
 * needs no secret, so it runs in this process; decryption runs in the HSM.
 */
async function encryptRsa(deps: BackendDeps, key: KeyVersion, plaintext: Buffer) {
  const maximum = modulusBytes(key) - 2 * 32 - 2
  if (plaintext.length > maximum) {
    throw new ApiError(
      400,
      'invalid_request',
      `field 'plaintext' is ${plaintext.length} bytes; RSAES_OAEP_SHA_256 with ${key.type} ` +
        `takes at most ${maximum}; use a data key for larger data`,
    )
  }
  const spki = await deps.cluster.publicKeySpki(Buffer.from(key.ckaId, 'hex'))
  const publicKey = { key: spki, format: 'der' as const, type: 'spki' as const }
  const ciphertext = publicEncrypt(
    { ...publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    plaintext,
  )
  return encodeVersioned('HR', key.version, ciphertext)
}

async function decryptRsa(deps: BackendDeps, key: KeyVersion, ciphertext: Buffer) {
  const k = modulusBytes(key)
  if (ciphertext.length !== k) throw failed()
  const mechanism = { mechanism: pkcs11js.CKM_RSA_X_509 }
  const id = Buffer.from(key.ckaId, 'hex')
  const block = await decryptWithPrivateKey(deps.cluster, id, mechanism, ciphertext)
  const plaintext = oaepDecode(block, k)
  block.fill(0)
  if (plaintext === undefined) throw failed()
  return plaintext
}

/**
 * The key version and raw ciphertext of a decrypt request: an RSA ciphertext is either the
 * hsmgate blob that encrypt returns, or a bare OAEP ciphertext with the version in `version`.
 */
async function openRequest(
  c: Context<BackendEnv>,
  deps: BackendDeps,
  body: Record<string, unknown>,
) {
  const bytes = base64Field(body, 'ciphertext')
  const version = optionalVersion(body)
  if (version !== undefined)
    return { key: await keyContext(c, deps, 'decrypt', RSA_TYPES, version), bytes }
  if (bytes.subarray(0, 2).toString('ascii') === 'HR') {
    const blob = decodeVersioned('HR', bytes, 'ciphertext')
    return { key: await keyContext(c, deps, 'decrypt', RSA_TYPES, blob.version), bytes: blob.body }
  }
  const envelope = decodeEnvelope(bytes)
  return {
    key: await keyContext(c, deps, 'decrypt', 'aes-256', envelope.version),
    bytes,
    envelope,
  }
}

/** Registers POST /v1/keys/:name/encrypt and /decrypt (AES-256-GCM and RSA-OAEP). */
export function registerEncryptRoutes(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/keys/:name/encrypt', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['plaintext', 'context', 'algorithm'])
    const key = await keyContext(c, deps, 'encrypt', TYPES)
    const algorithm = checkAlgorithm(body, key)
    const plaintext = base64Field(body, 'plaintext')
    // SoftHSM2 answers C_Encrypt of zero bytes with CKR_ARGUMENTS_BAD.
    if (plaintext.length === 0) {
      throw new ApiError(400, 'invalid_request', "field 'plaintext' is empty; send at least 1 byte")
    }
    const context = parseContext(body.context)
    if (isRsa(key) && body.context !== undefined) {
      throw new ApiError(400, 'invalid_request', "field 'context' applies to AES_256_GCM only")
    }
    const ciphertext = isRsa(key)
      ? await encryptRsa(deps, key, plaintext)
      : await encryptAes(deps, key, plaintext, context)
    return c.json({
      key: key.name,
      version: key.version,
      algorithm,
      ciphertext: ciphertext.toString('base64'),
      decision_id: c.get('decisionId'),
    })
  })

  app.post('/v1/keys/:name/decrypt', async (c) => {
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['ciphertext', 'context', 'algorithm', 'version'])
    c.get('audit').operation = 'decrypt'
    const context = parseContext(body.context)
    const { key, bytes, envelope } = await openRequest(c, deps, body)
    checkAlgorithm(body, key)
    const plaintext =
      envelope === undefined
        ? await decryptRsa(deps, key, bytes)
        : await deps.cluster.decryptAesGcm(Buffer.from(key.ckaId, 'hex'), {
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
