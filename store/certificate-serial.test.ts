import { describe, expect, it } from 'vitest'
import { normalizeSerial } from './certificate-serial.js'

describe('normalizeSerial', () => {
  it('gives the same form for the spellings of node, openssl and @peculiar/x509', () => {
    expect(normalizeSerial('0A1B2C')).toBe('0a1b2c')
    expect(normalizeSerial('0a:1b:2c')).toBe('0a1b2c')
    expect(normalizeSerial('00fa1b')).toBe('fa1b')
    expect(normalizeSerial('A1B')).toBe('0a1b')
    expect(normalizeSerial('00')).toBe('00')
  })
})
