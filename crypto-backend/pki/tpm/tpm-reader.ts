/** A TPM structure that is truncated, too long or has a field value this gateway rejects. */
export class TpmFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TpmFormatError'
  }
}

/**
 * Reads big-endian TPM 2.0 wire structures. Every read checks the remaining length first, so a
 * size field that claims more bytes than the buffer holds throws TpmFormatError instead of
 * reading past the end.
 */
export class TpmReader {
  private offset = 0

  constructor(
    private readonly bytes: Buffer,
    private readonly what: string,
  ) {}

  get position(): number {
    return this.offset
  }

  u8(): number {
    return this.take(1).readUInt8(0)
  }

  u16(): number {
    return this.take(2).readUInt16BE(0)
  }

  u32(): number {
    return this.take(4).readUInt32BE(0)
  }

  u64(): bigint {
    return this.take(8).readBigUInt64BE(0)
  }

  /** Reads a TPM2B: a 16-bit size, then that many bytes, at most `max`. */
  sized(field: string, max: number): Buffer {
    const size = this.u16()
    if (size > max) {
      throw new TpmFormatError(`${this.what}: ${field} is ${size} bytes; the maximum is ${max}`)
    }
    return this.take(size)
  }

  /** Returns the bytes between two positions, for hashing a structure as it was sent. */
  slice(start: number, end: number): Buffer {
    return this.bytes.subarray(start, end)
  }

  /** Throws unless every byte was consumed; trailing bytes would go unchecked otherwise. */
  end(): void {
    const rest = this.bytes.length - this.offset
    if (rest !== 0) throw new TpmFormatError(`${this.what}: ${rest} unexpected trailing bytes`)
  }

  private take(count: number): Buffer {
    if (this.offset + count > this.bytes.length) {
      throw new TpmFormatError(
        `${this.what}: truncated at byte ${this.offset}, ${count} more bytes expected`,
      )
    }
    const part = this.bytes.subarray(this.offset, this.offset + count)
    this.offset += count
    return part
  }
}
