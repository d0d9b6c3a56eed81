import { createHash, webcrypto } from 'node:crypto'
import type { HsmCluster } from '../hsm/index.js'

/** A handle to an HSM-resident ECDSA P-256 private key, shaped as a WebCrypto CryptoKey. */
export interface HsmSigningKey extends CryptoKey {
  readonly ckaId: Buffer
}

/** Returns a CryptoKey-shaped handle for the P-256 private key under `ckaId`. */
export function hsmSigningKey(ckaId: Buffer): HsmSigningKey {
  return {
    ckaId,
    algorithm: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyAlgorithm,
    extractable: false,
    type: 'private',
    usages: ['sign'],
  }
}

function isHsmSigningKey(key: CryptoKey): key is HsmSigningKey {
  return 'ckaId' in key && Buffer.isBuffer((key as HsmSigningKey).ckaId)
}

/**
 * Builds a WebCrypto object for @peculiar/x509 whose `subtle.sign` sends ECDSA-SHA-256
 * signatures of HSM key handles to the cluster, so the issuing key never leaves the HSM. All
 * other calls go to Node's WebCrypto.
 */
export function hsmWebCrypto(cluster: HsmCluster): Crypto {
  const sign = async (
    algorithm: AlgorithmIdentifier | EcdsaParams,
    key: CryptoKey,
    data: BufferSource,
  ): Promise<ArrayBuffer> => {
    if (!isHsmSigningKey(key)) return webcrypto.subtle.sign(algorithm, key, data)
    const hash = typeof algorithm === 'object' && 'hash' in algorithm ? algorithm.hash : undefined
    const hashName = typeof hash === 'string' ? hash : hash?.name
    if (hashName !== 'SHA-256') {
      throw new TypeError(`HSM signing supports ECDSA with SHA-256, not ${String(hashName)}`)
    }
    const bytes = ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data)
    const digest = createHash('sha256').update(bytes).digest()
    const raw = await cluster.signEcdsa(key.ckaId, digest)
    return raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer
  }

  const subtle = new Proxy(webcrypto.subtle, {
    get(target, property) {
      if (property === 'sign') return sign
      const value: unknown = Reflect.get(target, property)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {
    subtle,
    getRandomValues: <T extends ArrayBufferView | null>(array: T): T =>
      webcrypto.getRandomValues(array as never) as T,
    randomUUID: () => webcrypto.randomUUID(),
  } as Crypto
}
