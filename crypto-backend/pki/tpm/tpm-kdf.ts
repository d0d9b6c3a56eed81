import { createHash, createHmac } from 'node:crypto'

/**
 * KDFa of TPM 2.0 Part 1, section 11.4.10.2: HMAC in counter mode over
 * `counter || label || 0x00 || contextU || contextV || bits`, truncated to `bits`.
 */
export function kdfa(
  hash: string,
  key: Buffer,
  label: string,
  contextU: Buffer,
  contextV: Buffer,
  bits: number,
): Buffer {
  const bytes = Math.ceil(bits / 8)
  const blocks: Buffer[] = []
  for (let counter = 1, total = 0; total < bytes; counter++) {
    const block = createHmac(hash, key)
      .update(u32(counter))
      .update(labelBytes(label))
      .update(contextU)
      .update(contextV)
      .update(u32(bits))
      .digest()
    blocks.push(block)
    total += block.length
  }
  return Buffer.concat(blocks).subarray(0, bytes)
}

/**
 * KDFe of TPM 2.0 Part 1, section 11.4.10.3, the one-step KDF of NIST SP 800-56A:
 * `hash(counter || Z || label || 0x00 || partyUInfo || partyVInfo)`, truncated to `bits`.
 */
export function kdfe(
  hash: string,
  z: Buffer,
  label: string,
  partyUInfo: Buffer,
  partyVInfo: Buffer,
  bits: number,
): Buffer {
  const bytes = Math.ceil(bits / 8)
  const blocks: Buffer[] = []
  for (let counter = 1, total = 0; total < bytes; counter++) {
    const block = createHash(hash)
      .update(u32(counter))
      .update(z)
      .update(labelBytes(label))
      .update(partyUInfo)
      .update(partyVInfo)
      .digest()
    blocks.push(block)
    total += block.length
  }
  return Buffer.concat(blocks).subarray(0, bytes)
}

/** A KDF label is the ASCII text with its terminating zero byte. */
function labelBytes(label: string): Buffer {
  return Buffer.concat([Buffer.from(label, 'ascii'), Buffer.alloc(1)])
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(value >>> 0)
  return buffer
}
