import { execFile } from 'node:child_process'
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { additionalData } from '../../crypto-backend/keys/aead-envelope.js'
import { startBackendHarness, type BackendHarness } from '../helpers/backend-harness.js'
import { importKnownSecret } from '../helpers/known-keys.js'
import { findAll, withToken } from '../helpers/softhsm-env.js'

// Encryption, MACs, key wrapping, data keys and random bytes over real SoftHSM2 tokens. Where
// the HSM key is one the test imported with a known value, node:crypto recomputes the result;
// RSA-OAEP is checked with openssl pkeyutl and the public key from the gateway.

const run = promisify(execFile)
let harness: BackendHarness
let work: string
const b64 = (data: Buffer) => data.toString('base64')
const unb64 = (value: unknown) => Buffer.from(String(value), 'base64')
const aesValue = randomBytes(32)
const hmacValue = randomBytes(48)
const wrapValue = randomBytes(32)

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hsmgate-enc-'))
  harness = await startBackendHarness()
  await importKnownSecret(harness, 'known-aes', 'aes-256', aesValue)
  await importKnownSecret(harness, 'known-hmac', 'hmac-sha384', hmacValue)
  await importKnownSecret(harness, 'known-wrap', 'aes-256-wrap', wrapValue)
  for (const [name, body] of [
    ['oaep', { type: 'rsa', size: 2048 }],
    ['mac256', { type: 'hmac', size: 256 }],
    ['data', { type: 'aes' }],
  ] as const) {
    const created = await harness.call(`/v1/keys/payments-${name}/create`, body)
    expect(created.status, JSON.stringify(created.json)).toBe(201)
  }
}, 120_000)

afterAll(async () => {
  await harness?.close()
  rmSync(work, { recursive: true, force: true })
})

describe('AES-256-GCM with an encryption context', () => {
  const context = { tenant: 'acme', purpose: 'invoice' }

  it('node:crypto decrypts what the gateway encrypted, with the context as AAD', async () => {
    const plaintext = randomBytes(1024)
    const response = await harness.call('/v1/keys/known-aes/encrypt', {
      plaintext: b64(plaintext),
      context,
    })
    expect(response.status).toBe(200)
    const blob = unb64(response.json.ciphertext)
    // "HG" | format | version (4) | IV (12) | ciphertext | tag (16)
    expect(blob.readUInt32BE(3)).toBe(1)
    const iv = blob.subarray(7, 19)
    const decipher = createDecipheriv('aes-256-gcm', aesValue, iv)
    decipher.setAAD(additionalData('known-aes', 1, context))
    decipher.setAuthTag(blob.subarray(blob.length - 16))
    const opened = Buffer.concat([
      decipher.update(blob.subarray(19, blob.length - 16)),
      decipher.final(),
    ])
    expect(opened.equals(plaintext)).toBe(true)
  })

  it('the gateway decrypts what node:crypto encrypted; another context is a 400', async () => {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', aesValue, iv)
    cipher.setAAD(additionalData('known-aes', 1, context))
    const sealed = Buffer.concat([
      cipher.update('secret ledger'),
      cipher.final(),
      cipher.getAuthTag(),
    ])
    const header = Buffer.from([0x48, 0x47, 1, 0, 0, 0, 1])
    const ciphertext = b64(Buffer.concat([header, iv, sealed]))
    const ok = await harness.call('/v1/keys/known-aes/decrypt', { ciphertext, context })
    expect(unb64(ok.json.plaintext).toString()).toBe('secret ledger')
    const other = { ...context, tenant: 'evil' }
    const bad = await harness.call('/v1/keys/known-aes/decrypt', { ciphertext, context: other })
    expect(bad.status).toBe(400)
    expect((bad.json.error as { code: string }).code).toBe('decrypt_failed')
    expect(harness.cluster.status().every((m) => m.state === 'healthy')).toBe(true)
  })
})

describe('RSA-OAEP with SHA-256', () => {
  it('decrypts what openssl pkeyutl encrypted with the public key', async () => {
    const described = await harness.call('/v1/keys/payments-oaep')
    writeFileSync(join(work, 'oaep.pem'), String(described.json.public_key_pem))
    writeFileSync(join(work, 'plain'), 'wire transfer key')
    const opts = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256']
    const inkey = ['-pubin', '-inkey', join(work, 'oaep.pem')]
    const files = ['-in', join(work, 'plain'), '-out', join(work, 'ct')]
    await run('openssl', ['pkeyutl', '-encrypt', ...inkey, ...opts, ...files])
    const ciphertext = b64(readFileSync(join(work, 'ct')))
    const response = await harness.call('/v1/keys/payments-oaep/decrypt', {
      ciphertext,
      version: 1,
    })
    expect(response.status, JSON.stringify(response.json)).toBe(200)
    expect(unb64(response.json.plaintext).toString()).toBe('wire transfer key')
    const tampered = readFileSync(join(work, 'ct'))
    tampered[10] = (tampered[10] ?? 0) ^ 1
    const bad = await harness.call('/v1/keys/payments-oaep/decrypt', {
      ciphertext: b64(tampered),
      version: 1,
    })
    expect(bad.status).toBe(400)
  })

  it('round-trips through encrypt and decrypt; a context is refused', async () => {
    const enc = await harness.call('/v1/keys/payments-oaep/encrypt', {
      plaintext: b64(Buffer.from('hi')),
    })
    expect(enc.json.algorithm).toBe('RSAES_OAEP_SHA_256')
    const dec = await harness.call('/v1/keys/payments-oaep/decrypt', {
      ciphertext: enc.json.ciphertext,
    })
    expect(unb64(dec.json.plaintext).toString()).toBe('hi')
    const ctx = await harness.call('/v1/keys/payments-oaep/encrypt', {
      plaintext: 'aGk=',
      context: {},
    })
    expect(ctx.status).toBe(400)
  })
})

describe('HMAC', () => {
  it('HMAC-SHA-384 equals node:crypto; hmac-verify accepts it and rejects another', async () => {
    const message = randomBytes(300)
    const response = await harness.call('/v1/keys/known-hmac/hmac', { message: b64(message) })
    expect(response.json.algorithm).toBe('HMAC_SHA_384')
    const expected = createHmac('sha384', hmacValue).update(message).digest()
    expect(unb64(response.json.mac).equals(expected)).toBe(true)
    const path = '/v1/keys/known-hmac/hmac-verify'
    const ok = await harness.call(path, { message: b64(message), mac: b64(expected) })
    expect(ok.json.valid).toBe(true)
    const bad = await harness.call(path, { message: b64(message), mac: b64(randomBytes(48)) })
    expect(bad.json.valid).toBe(false)
  })

  it('HMAC-SHA-256 keys give 32-byte MACs and refuse HMAC_SHA_384', async () => {
    const response = await harness.call('/v1/keys/payments-mac256/hmac', { message: 'aGk=' })
    expect(unb64(response.json.mac)).toHaveLength(32)
    const wrong = await harness.call('/v1/keys/payments-mac256/hmac', {
      message: 'aGk=',
      algorithm: 'HMAC_SHA_384',
    })
    expect(wrong.status).toBe(400)
    expect(JSON.stringify(wrong.json)).toContain('allowed: HMAC_SHA_256')
  })
})

describe('key wrapping (AES key wrap with padding)', () => {
  it('equals node:crypto id-aes256-wrap-pad and unwraps again', async () => {
    const odd = await harness.call('/v1/keys/known-wrap/wrap', {
      key_material: b64(randomBytes(20)),
    })
    expect(odd.status).toBe(400)
    expect(JSON.stringify(odd.json)).toContain('multiples of 8')
    const material = randomBytes(24)
    const response = await harness.call('/v1/keys/known-wrap/wrap', { key_material: b64(material) })
    expect(response.status, JSON.stringify(response.json)).toBe(200)
    const blob = unb64(response.json.wrapped)
    const cipher = createCipheriv('id-aes256-wrap-pad', wrapValue, Buffer.from('a65959a6', 'hex'))
    const expected = Buffer.concat([cipher.update(material), cipher.final()])
    expect(blob.subarray(7).equals(expected)).toBe(true)
    const unwrapped = await harness.call('/v1/keys/known-wrap/unwrap', { wrapped: b64(blob) })
    expect(unb64(unwrapped.json.key_material).equals(material)).toBe(true)
  })

  it('tampered input is a 400, and unwrap leaves no object on the token', async () => {
    const token = harness.env.tokens[0]!
    const count = () => withToken(token, (p, s) => findAll(p, s, []).length)
    const before = await count()
    const response = await harness.call('/v1/keys/known-wrap/wrap', {
      key_material: b64(randomBytes(32)),
    })
    const blob = unb64(response.json.wrapped)
    blob[12] = (blob[12] ?? 0) ^ 0xff
    const bad = await harness.call('/v1/keys/known-wrap/unwrap', { wrapped: b64(blob) })
    expect(bad.status).toBe(400)
    const good = await harness.call('/v1/keys/known-wrap/unwrap', {
      wrapped: response.json.wrapped,
    })
    expect(good.status).toBe(200)
    expect(await count()).toBe(before)
    const extra = await harness.call('/v1/keys/known-wrap/unwrap', {
      wrapped: response.json.wrapped,
      extractable: true,
    })
    expect(extra.status).toBe(400)
  })

  it('a wrapping key cannot wrap a key made through hsmgate (CKA_WRAP_WITH_TRUSTED)', async () => {
    const data = (await harness.store.keyVersions('payments-data'))[0]!
    const wrap = (await harness.store.keyVersions('known-wrap'))[0]!
    const find = (p: pkcs11js.PKCS11, s: pkcs11js.Handle, hex: string) =>
      findAll(p, s, [{ type: pkcs11js.CKA_ID, value: Buffer.from(hex, 'hex') }])[0]!
    const error = await withToken(harness.env.tokens[0]!, (p, s) => {
      const mech = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }
      try {
        p.C_WrapKey(s, mech, find(p, s, wrap.ckaId), find(p, s, data.ckaId), Buffer.alloc(512))
        return 'wrapped'
      } catch (caught) {
        return (caught as Error).message
      }
    })
    expect(error).toContain('CKR_KEY_NOT_WRAPPABLE')
  })
})

describe('data keys and random bytes', () => {
  it('returns a data key node:crypto can use and whose ciphertext decrypts to it', async () => {
    const context = { file: 'backup-7' }
    const response = await harness.call('/v1/keys/payments-data/data-key', { bytes: 32, context })
    const plaintext = unb64(response.json.plaintext)
    expect(plaintext).toHaveLength(32)
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', plaintext, iv)
    expect(Buffer.concat([cipher.update('x'), cipher.final()])).toHaveLength(1)
    const opened = await harness.call('/v1/keys/payments-data/decrypt', {
      ciphertext: response.json.ciphertext,
      context,
    })
    expect(unb64(opened.json.plaintext).equals(plaintext)).toBe(true)
    const bad = await harness.call('/v1/keys/payments-data/data-key', { bytes: 20 })
    expect(bad.status).toBe(400)
  })

  it('random gives 1 to 1024 bytes and names the range otherwise', async () => {
    for (const length of [1, 1024]) {
      const response = await harness.call('/v1/random', { length })
      expect(unb64(response.json.random)).toHaveLength(length)
    }
    for (const length of [0, 1025, 1.5]) {
      const response = await harness.call('/v1/random', { length })
      expect(response.status).toBe(400)
      expect(JSON.stringify(response.json)).toContain('1024')
    }
  })
})
