import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * RSAES-OAEP decoding with SHA-256, MGF1-SHA-256 and an empty label (RFC 8017 section 7.1.2).
 * SoftHSM2 2.6.1 accepts CKM_RSA_PKCS_OAEP only with SHA-1 (CKR_ARGUMENTS_BAD otherwise), so the
 * HSM does the private-key operation with CKM_RSA_X_509 and this module removes the padding.
 * Every failure gives the same undefined result after the same work, so that callers cannot tell
 * which check failed (Manger's attack).
 */

const H_LEN = 32
const EMPTY_LABEL_HASH = createHash('sha256').digest()

function mgf1(seed: Buffer, length: number): Buffer {
  const blocks: Buffer[] = []
  for (let counter = 0; blocks.length * H_LEN < length; counter += 1) {
    const c = Buffer.alloc(4)
    c.writeUInt32BE(counter)
    blocks.push(createHash('sha256').update(seed).update(c).digest())
  }
  return Buffer.concat(blocks).subarray(0, length)
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length)
  for (let i = 0; i < a.length; i += 1) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0)
  return out
}

/** Decodes the k-byte encoded message `em`; returns the plaintext or undefined. */
export function oaepDecode(em: Buffer, k: number): Buffer | undefined {
  if (k < 2 * H_LEN + 2 || em.length > k) return undefined
  const block = Buffer.concat([Buffer.alloc(k - em.length), em])
  const maskedSeed = block.subarray(1, 1 + H_LEN)
  const maskedDb = block.subarray(1 + H_LEN)
  const seed = xor(maskedSeed, mgf1(maskedDb, H_LEN))
  const db = xor(maskedDb, mgf1(seed, k - H_LEN - 1))

  let good = block[0] === 0 ? 1 : 0
  good &= timingSafeEqual(db.subarray(0, H_LEN), EMPTY_LABEL_HASH) ? 1 : 0
  // Find the 0x01 separator after the zero padding without branching on secret bytes.
  let separator = -1
  let inPadding = 1
  for (let i = H_LEN; i < db.length; i += 1) {
    const byte = db[i] ?? 0
    const isOne = byte === 1 ? 1 : 0
    const isZero = byte === 0 ? 1 : 0
    if (inPadding & isOne) separator = i
    good &= inPadding & ~isOne & ~isZero & 1 ? 0 : 1
    inPadding &= isZero
  }
  good &= separator >= 0 ? 1 : 0
  return good === 1 ? db.subarray(separator + 1) : undefined
}
