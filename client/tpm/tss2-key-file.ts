/** OID 2.23.133.10.1.3: a loadable TPM key in the TSS2 private key file format. */
const LOADABLE_KEY_OID = Buffer.from([0x06, 0x06, 0x67, 0x81, 0x05, 0x0a, 0x01, 0x03])

/**
 * Encodes a TPM key as a `TSS2 PRIVATE KEY` PEM file, which the tpm2-openssl provider and
 * tpm2-tss-engine load: the loadable-key OID, emptyAuth TRUE, the parent's persistent handle,
 * the TPM2B_PUBLIC and the TPM2B_PRIVATE. The private part is the key wrapped by the parent, so
 * it is useless outside the TPM that holds the parent.
 */
export function encodeTss2PrivateKey(
  parent: number,
  publicBlob: Buffer,
  privateBlob: Buffer,
): string {
  const emptyAuth = Buffer.from([0xa0, 0x03, 0x01, 0x01, 0xff])
  const der = tlv(
    0x30,
    Buffer.concat([
      LOADABLE_KEY_OID,
      emptyAuth,
      tlv(0x02, integer(parent)),
      tlv(0x04, publicBlob),
      tlv(0x04, privateBlob),
    ]),
  )
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN TSS2 PRIVATE KEY-----\n${lines.join('\n')}\n-----END TSS2 PRIVATE KEY-----\n`
}

function integer(value: number): Buffer {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value >>> 0)
  let start = 0
  while (start < 3 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++
  const trimmed = bytes.subarray(start)
  return (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed
}

function tlv(tag: number, value: Buffer): Buffer {
  const length = value.length
  if (length < 0x80) return Buffer.concat([Buffer.from([tag, length]), value])
  if (length < 0x100) return Buffer.concat([Buffer.from([tag, 0x81, length]), value])
  return Buffer.concat([Buffer.from([tag, 0x82, length >> 8, length & 0xff]), value])
}
