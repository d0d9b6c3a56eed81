import { describe, expect, it } from 'vitest'
import { parseCertifyAttestation } from './tpm-attest.js'
import { parseTpmPublic } from './tpm-public.js'
import { TpmFormatError } from './tpm-reader.js'
import { parseEcdsaSignature } from './tpm-signature.js'

// Hand-built structures; tpm-attestation.test.ts checks real ones from swtpm.

const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff])
const u32 = (v: number) => Buffer.from([v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff])
const sized = (b: Buffer) => Buffer.concat([u16(b.length), b])

function attest(overrides: { magic?: number; type?: number; extra?: Buffer } = {}): Buffer {
  return Buffer.concat([
    u32(overrides.magic ?? 0xff544347),
    u16(overrides.type ?? 0x8017),
    sized(Buffer.alloc(34, 1)),
    sized(overrides.extra ?? Buffer.alloc(32, 2)),
    Buffer.alloc(8 + 4 + 4 + 1 + 8),
    sized(Buffer.alloc(34, 3)),
    sized(Buffer.alloc(34, 4)),
  ])
}

describe('TPMS_ATTEST parser', () => {
  it('reads a certify structure', () => {
    const parsed = parseCertifyAttestation(attest())
    expect(parsed.extraData).toEqual(Buffer.alloc(32, 2))
    expect(parsed.certifiedName).toEqual(Buffer.alloc(34, 3))
  })

  it('rejects a wrong magic or type', () => {
    expect(() => parseCertifyAttestation(attest({ magic: 0xff544348 }))).toThrow(/magic/)
    expect(() => parseCertifyAttestation(attest({ type: 0x8018 }))).toThrow(/type/)
  })

  it('rejects a size field past the end', () => {
    const bytes = attest()
    bytes.writeUInt16BE(0x40, 6 + 2 + 34)
    expect(() => parseCertifyAttestation(bytes)).toThrow(TpmFormatError)
  })

  it('rejects oversized fields and trailing bytes', () => {
    expect(() => parseCertifyAttestation(attest({ extra: Buffer.alloc(65) }))).toThrow(/maximum/)
    expect(() => parseCertifyAttestation(Buffer.concat([attest(), Buffer.alloc(1)]))).toThrow(
      /trailing/,
    )
  })
})

describe('TPMT_PUBLIC parser', () => {
  it('rejects RSA keys and truncated areas', () => {
    expect(() => parseTpmPublic(Buffer.concat([u16(0x0001), u16(0x000b)]), 'k')).toThrow(/not ECC/)
    expect(() => parseTpmPublic(Buffer.concat([u16(0x0023), u16(0x000b)]), 'k')).toThrow(
      /truncated/,
    )
  })

  it('rejects a point that is not on P-256', () => {
    const area = Buffer.concat([
      ...[u16(0x0023), u16(0x000b), u32(0x00040072), sized(Buffer.alloc(0))],
      ...[u16(0x0010), u16(0x0010), u16(0x0003), u16(0x0010)],
      ...[sized(Buffer.alloc(32, 1)), sized(Buffer.alloc(32, 1))],
    ])
    expect(() => parseTpmPublic(area, 'k')).toThrow(/not on the P-256 curve/)
  })
})

describe('TPMT_SIGNATURE parser', () => {
  it('rejects non-ECDSA and oversized values', () => {
    expect(() => parseEcdsaSignature(Buffer.concat([u16(0x0014), u16(0x000b)]))).toThrow(/ECDSA/)
    const big = Buffer.concat([
      u16(0x0018),
      u16(0x000b),
      sized(Buffer.alloc(33)),
      sized(Buffer.alloc(1)),
    ])
    expect(() => parseEcdsaSignature(big)).toThrow(/maximum/)
  })
})
