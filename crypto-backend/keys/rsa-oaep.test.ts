import {
  constants,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { oaepDecode } from './rsa-oaep.js'

// The private-key operation runs here without padding (RSA_NO_PADDING), as CKM_RSA_X_509 does
// in the HSM; node:crypto produces the OAEP ciphertexts.
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const raw = (ciphertext: Buffer) =>
  privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, ciphertext)
const encrypt = (plaintext: Buffer, oaepHash = 'sha256') =>
  publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, plaintext)

describe('oaepDecode', () => {
  it('recovers plaintexts of 0 to 190 bytes that node:crypto encrypted', () => {
    for (const length of [0, 1, 32, 190]) {
      const plaintext = randomBytes(length)
      expect(oaepDecode(raw(encrypt(plaintext)), 256)?.equals(plaintext)).toBe(true)
    }
  })

  it('rejects OAEP with SHA-1, PKCS#1 v1.5 padding and modified ciphertexts', () => {
    const plaintext = Buffer.from('secret')
    expect(oaepDecode(raw(encrypt(plaintext, 'sha1')), 256)).toBeUndefined()
    const v15 = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, plaintext)
    expect(oaepDecode(raw(v15), 256)).toBeUndefined()
    const modified = encrypt(plaintext)
    modified[100] = (modified[100] ?? 0) ^ 1
    expect(oaepDecode(raw(modified), 256)).toBeUndefined()
  })

  it('rejects blocks of the wrong size', () => {
    expect(oaepDecode(Buffer.alloc(257), 256)).toBeUndefined()
    expect(oaepDecode(Buffer.alloc(10), 10)).toBeUndefined()
  })
})
