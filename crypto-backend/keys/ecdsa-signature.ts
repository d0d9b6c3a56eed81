/**
 * Conversions between the raw ECDSA signature that PKCS#11 produces (r and s as fixed-width
 * big-endian integers) and the DER `SEQUENCE { INTEGER r, INTEGER s }` that OpenSSL and X.509
 * use.
 */

function derInteger(value: Buffer): Buffer {
  let start = 0
  while (start < value.length - 1 && value[start] === 0) start++
  let body = value.subarray(start)
  // A set high bit would make the INTEGER negative, so DER adds a leading zero byte.
  if ((body[0] ?? 0) & 0x80) body = Buffer.concat([Buffer.from([0]), body])
  return Buffer.concat([Buffer.from([0x02, body.length]), body])
}

function derLength(length: number): Buffer {
  return length < 0x80 ? Buffer.from([length]) : Buffer.from([0x81, length])
}

/** Encodes a raw r||s signature as DER. */
export function rawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2
  const r = derInteger(raw.subarray(0, half))
  const s = derInteger(raw.subarray(half))
  return Buffer.concat([Buffer.from([0x30]), derLength(r.length + s.length), r, s])
}

/**
 * Decodes a DER ECDSA signature into raw r||s of `size` bytes per integer. Returns undefined
 * when the input is not a well-formed DER signature for that size.
 */
export function derToRaw(der: Buffer, size: number): Buffer | undefined {
  let offset = 0
  const readLength = (): number | undefined => {
    const first = der[offset++]
    if (first === undefined) return undefined
    if (first < 0x80) return first
    if (first !== 0x81) return undefined
    const second = der[offset++]
    return second !== undefined && second >= 0x80 ? second : undefined
  }
  const readInteger = (): Buffer | undefined => {
    if (der[offset++] !== 0x02) return undefined
    const length = readLength()
    if (length === undefined || length === 0 || offset + length > der.length) return undefined
    let value = der.subarray(offset, offset + length)
    offset += length
    if (value[0] === 0 && value.length > 1) value = value.subarray(1)
    if (value.length > size) return undefined
    return Buffer.concat([Buffer.alloc(size - value.length), value])
  }

  if (der[offset++] !== 0x30) return undefined
  const total = readLength()
  if (total === undefined || offset + total !== der.length) return undefined
  const r = readInteger()
  const s = readInteger()
  if (r === undefined || s === undefined || offset !== der.length) return undefined
  return Buffer.concat([r, s])
}
