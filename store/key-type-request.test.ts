import { describe, expect, it } from 'vitest'
import { keyTypeOf, KeyTypeRequestError, tagsOf } from './key-type-request.js'

function message(body: Record<string, unknown>): string {
  try {
    keyTypeOf(body)
  } catch (error) {
    expect(error).toBeInstanceOf(KeyTypeRequestError)
    return (error as KeyTypeRequestError).message
  }
  throw new Error('no error')
}

describe('keyTypeOf', () => {
  it('maps families with their size or curve, and the defaults', () => {
    expect(keyTypeOf({ type: 'ec' })).toBe('ec-p256')
    expect(keyTypeOf({ type: 'ec', curve: 'P-384' })).toBe('ec-p384')
    expect(keyTypeOf({ type: 'rsa' })).toBe('rsa-3072')
    expect(keyTypeOf({ type: 'rsa', size: 4096 })).toBe('rsa-4096')
    expect(keyTypeOf({ type: 'hmac', size: 384 })).toBe('hmac-sha384')
    expect(keyTypeOf({ type: 'aes-wrap' })).toBe('aes-256-wrap')
    expect(keyTypeOf({ type: 'ed25519' })).toBe('ed25519')
    expect(keyTypeOf({ type: 'rsa-2048' })).toBe('rsa-2048')
  })

  it('names the allowed values of each wrong field', () => {
    expect(message({ type: 'dsa' })).toContain('allowed: ec, rsa, ed25519, aes, aes-wrap, hmac')
    expect(message({ type: 'rsa', size: 1024 })).toContain('allowed (bits): 2048, 3072, 4096')
    expect(message({ type: 'ec', curve: 'P-521' })).toContain('P-256, P-384')
    expect(message({ type: 'ec', size: 256 })).toContain("'size' does not apply")
    expect(message({ type: 'ed25519', size: 256 })).toContain('omit')
    expect(message({ type: 'rsa-2048', size: 2048 })).toContain('omit')
  })
})

describe('tagsOf', () => {
  it('accepts up to 16 short strings and rejects anything else', () => {
    expect(tagsOf({ tags: ['a', 'b'] })).toEqual(['a', 'b'])
    expect(tagsOf({})).toEqual([])
    expect(() => tagsOf({ tags: 'a' })).toThrow(KeyTypeRequestError)
    expect(() => tagsOf({ tags: [''] })).toThrow(KeyTypeRequestError)
    expect(() => tagsOf({ tags: Array.from({ length: 17 }, () => 'x') })).toThrow(
      KeyTypeRequestError,
    )
  })
})
