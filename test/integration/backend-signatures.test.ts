import { execFile } from 'node:child_process'
import { constants, createHash, createPublicKey, verify } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBackendHarness, type BackendHarness } from '../helpers/backend-harness.js'

// The crypto backend over two real SoftHSM2 tokens; every signature is checked by node:crypto
// or OpenSSL with the public key that GET /v1/keys/{name} returns, never by hsmgate's verify.

const run = promisify(execFile)
let harness: BackendHarness
let work: string
const message = Buffer.from('pay 1,250.00 EUR to account 42\n'.repeat(20))
const b64 = (data: Buffer) => data.toString('base64')

async function publicKey(name: string) {
  const response = await harness.call(`/v1/keys/payments-${name}`)
  expect(response.status).toBe(200)
  return String(response.json.public_key_pem)
}

async function signed(name: string, body: Record<string, unknown>) {
  const response = await harness.call(`/v1/keys/payments-${name}/sign`, body)
  expect(response.status, JSON.stringify(response.json)).toBe(200)
  return Buffer.from(String(response.json.signature), 'base64')
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hsmgate-sig-'))
  harness = await startBackendHarness()
  const keys: Array<[string, Record<string, unknown>]> = [
    ['p256', { type: 'ec', curve: 'P-256' }],
    ['p384', { type: 'ec', curve: 'P-384' }],
    ['ed', { type: 'ed25519' }],
    ['rsa2048', { type: 'rsa', size: 2048 }],
    ['rsa3072', { type: 'rsa', size: 3072 }],
    ['rsa4096', { type: 'rsa-4096' }],
  ]
  for (const [name, body] of keys) {
    const created = await harness.call(`/v1/keys/payments-${name}/create`, body)
    expect(created.status, JSON.stringify(created.json)).toBe(201)
  }
}, 180_000)

afterAll(async () => {
  await harness?.close()
  rmSync(work, { recursive: true, force: true })
})

describe('ECDSA', () => {
  for (const [name, hash] of [
    ['p256', 'sha256'],
    ['p384', 'sha384'],
  ] as const) {
    it(`${name}: DER by default, raw on request, message or digest`, async () => {
      const pem = await publicKey(name)
      const der = await signed(name, { message: b64(message) })
      expect(verify(hash, message, pem, der)).toBe(true)
      const raw = await signed(name, { message: b64(message), signature_format: 'raw' })
      expect(raw).toHaveLength(name === 'p256' ? 64 : 96)
      expect(verify(hash, message, { key: pem, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true)
      const digest = createHash(hash).update(message).digest()
      const fromDigest = await signed(name, { digest: b64(digest) })
      expect(verify(hash, message, pem, fromDigest)).toBe(true)
    })
  }

  it('openssl dgst verifies a P-256 signature', async () => {
    const files = { msg: join(work, 'm'), sig: join(work, 's'), pub: join(work, 'p256.pem') }
    writeFileSync(files.msg, message)
    writeFileSync(files.sig, await signed('p256', { message: b64(message) }))
    writeFileSync(files.pub, await publicKey('p256'))
    const args = ['dgst', '-sha256', '-verify', files.pub, '-signature', files.sig, files.msg]
    const { stdout } = await run('openssl', args)
    expect(stdout).toContain('Verified OK')
  })
})

describe('Ed25519', () => {
  it('signs the message; openssl pkeyutl verifies; a digest is refused', async () => {
    const pem = await publicKey('ed')
    const signature = await signed('ed', { message: b64(message) })
    expect(verify(null, message, pem, signature)).toBe(true)
    const files = { msg: join(work, 'em'), sig: join(work, 'es'), pub: join(work, 'ed.pem') }
    writeFileSync(files.msg, message)
    writeFileSync(files.sig, signature)
    writeFileSync(files.pub, pem)
    const args = ['pkeyutl', '-verify', '-pubin', '-inkey', files.pub, '-rawin']
    const { stdout } = await run('openssl', [...args, '-in', files.msg, '-sigfile', files.sig])
    expect(stdout).toContain('Signature Verified Successfully')
    const refused = await harness.call('/v1/keys/payments-ed/sign', {
      digest: b64(Buffer.alloc(32)),
    })
    expect(refused.status).toBe(400)
    expect(String((refused.json.error as { message: string }).message)).toContain("'message'")
  })
})

describe('RSA', () => {
  const hashes = ['sha256', 'sha384', 'sha512'] as const
  for (const name of ['rsa2048', 'rsa3072', 'rsa4096']) {
    for (const hash of hashes) {
      const suffix = `SHA_${hash.slice(3)}`
      it(`${name} RSASSA_PSS_${suffix} and RSASSA_PKCS1_V1_5_${suffix}`, async () => {
        const pem = await publicKey(name)
        const pss = await signed(name, { message: b64(message), algorithm: `RSASSA_PSS_${suffix}` })
        const pssKey = { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING }
        expect(verify(hash, message, { ...pssKey, saltLength: -2 }, pss)).toBe(true)
        const digest = createHash(hash).update(message).digest()
        const v15 = await signed(name, {
          digest: b64(digest),
          algorithm: `RSASSA_PKCS1_V1_5_${suffix}`,
        })
        expect(verify(hash, message, createPublicKey(pem), v15)).toBe(true)
      })
    }
  }

  it('openssl dgst verifies RSA-PSS with the digest-length salt', async () => {
    const files = { msg: join(work, 'rm'), sig: join(work, 'rs'), pub: join(work, 'rsa.pem') }
    writeFileSync(files.msg, message)
    writeFileSync(files.sig, await signed('rsa2048', { message: b64(message) }))
    writeFileSync(files.pub, await publicKey('rsa2048'))
    const pss = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1']
    const args = ['dgst', '-sha256', ...pss, '-verify', files.pub, '-signature', files.sig]
    const { stdout } = await run('openssl', [...args, files.msg])
    expect(stdout).toContain('Verified OK')
  })
})

describe('verify and algorithm checks', () => {
  it('verify accepts its own signature and rejects a modified message', async () => {
    const signature = b64(await signed('rsa2048', { message: b64(message) }))
    const ok = await harness.call('/v1/keys/payments-rsa2048/verify', {
      message: b64(message),
      signature,
    })
    expect(ok.json.valid).toBe(true)
    const other = b64(Buffer.from('pay 9,999.00 EUR'))
    const bad = await harness.call('/v1/keys/payments-rsa2048/verify', {
      message: other,
      signature,
    })
    expect(bad.status).toBe(200)
    expect(bad.json.valid).toBe(false)
  })

  it('an unknown algorithm or one that does not fit the key is a 400 listing the allowed', async () => {
    const wrong = await harness.call('/v1/keys/payments-p256/sign', {
      message: b64(message),
      algorithm: 'RSASSA_PSS_SHA_256',
    })
    expect(wrong.status).toBe(400)
    expect(JSON.stringify(wrong.json)).toContain('allowed: ECDSA_SHA_256')
    const unknown = await harness.call('/v1/keys/payments-rsa2048/sign', {
      message: b64(message),
      algorithm: 'RSA_MD5',
    })
    expect(unknown.status).toBe(400)
    expect(JSON.stringify(unknown.json)).toContain('RSASSA_PKCS1_V1_5_SHA_512')
    const raw = await harness.call('/v1/keys/payments-ed/sign', {
      message: b64(message),
      signature_format: 'raw',
    })
    expect(raw.status).toBe(400)
  })

  it('a digest of the wrong length names the expected length', async () => {
    const response = await harness.call('/v1/keys/payments-p384/sign', {
      digest: b64(Buffer.alloc(32)),
    })
    expect(response.status).toBe(400)
    expect(JSON.stringify(response.json)).toContain('48 bytes')
  })
})
