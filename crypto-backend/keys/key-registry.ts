import { ApiError } from '../api-error.js'
import type { KeyType, KeyVersion, Store } from '../../store/index.js'

/** Algorithms each key type supports, as named in the API. */
export const ALGORITHMS: Record<KeyType, readonly string[]> = {
  'ec-p256': ['ECDSA_SHA_256'],
  'aes-256': ['AES_256_GCM'],
}

/** Resolves key names and versions from the store and checks state and type. */
export class KeyRegistry {
  constructor(private readonly store: Store) {}

  /**
   * Returns the requested version of a key (the newest when `version` is undefined). Throws
   * 404 for an unknown name or version, 409 for a disabled key and 400 for a key of another
   * type than `type`.
   */
  resolve(name: string, type: KeyType, version?: number): KeyVersion {
    const versions = this.store.keyVersions(name)
    if (versions.length === 0) {
      throw new ApiError(404, 'key_not_found', `key '${name}' not found; GET /v1/keys lists keys`)
    }
    const key = version === undefined ? versions[0] : versions.find((v) => v.version === version)
    if (key === undefined) {
      throw new ApiError(404, 'key_not_found', `key '${name}' has no version ${version}`)
    }
    if (key.state !== 'enabled') {
      throw new ApiError(
        409,
        'key_disabled',
        `key '${name}' version ${key.version} is ${key.state}`,
      )
    }
    if (key.type !== type) {
      throw new ApiError(
        400,
        'wrong_key_type',
        `key '${name}' is ${key.type} and supports ${ALGORITHMS[key.type].join(', ')}`,
      )
    }
    return key
  }
}

/** Returns the API representation of a key version's metadata. */
export function keyMetadata(key: KeyVersion) {
  return {
    name: key.name,
    version: key.version,
    type: key.type,
    algorithms: ALGORITHMS[key.type],
    state: key.state,
    owner: key.owner,
    created_at: key.createdAt,
  }
}
