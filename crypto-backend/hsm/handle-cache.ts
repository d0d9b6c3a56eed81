import type pkcs11js from 'pkcs11js'

/** Upper bound of cached handles per member; the oldest entry goes first beyond it. */
const MAX_ENTRIES = 10_000

/**
 * Object handles of one member keyed by CKA_ID (hex) and CKO class, because C_FindObjects is
 * slow on tokens with many keys. Only found objects are cached: a key that is missing now may
 * be created later by another gateway node on the same token.
 */
export class HandleCache {
  private readonly entries = new Map<string, pkcs11js.Handle>()

  get(id: Buffer, objectClass: number): pkcs11js.Handle | undefined {
    return this.entries.get(cacheKey(id, objectClass))
  }

  set(id: Buffer, objectClass: number, handle: pkcs11js.Handle): void {
    const key = cacheKey(id, objectClass)
    this.entries.delete(key)
    this.entries.set(key, handle)
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
  }

  delete(id: Buffer, objectClass: number): void {
    this.entries.delete(cacheKey(id, objectClass))
  }

  clear(): void {
    this.entries.clear()
  }
}

function cacheKey(id: Buffer, objectClass: number): string {
  return `${id.toString('hex')}/${objectClass}`
}
