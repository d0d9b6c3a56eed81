import { ApiError } from '../api-error.js'
import { algorithmsOf } from './algorithms.js'
import type { KeyType, KeyVersion, Store } from '../../store/index.js'

/** Resolves key names and versions from the store and checks state and type. */
export class KeyRegistry {
  constructor(private readonly store: Store) {}

  /**
   * Returns the requested version of a key (the newest when `version` is undefined). Throws
   * 404 for an unknown name or version, 409 for a disabled or destroyed key and 400 for a key
   * whose type is not one of `types`, naming the operations its type supports.
   */
  async resolve(
    name: string,
    types: KeyType | readonly KeyType[],
    version?: number,
  ): Promise<KeyVersion> {
    const versions = await this.store.keyVersions(name)
    if (versions.length === 0) {
      throw new ApiError(404, 'key_not_found', `key '${name}' not found; GET /v1/keys lists keys`)
    }
    const key = version === undefined ? versions[0] : versions.find((v) => v.version === version)
    if (key === undefined) {
      const known = versions.map((v) => v.version).join(', ')
      throw new ApiError(
        404,
        'key_not_found',
        `key '${name}' has no version ${version} (has ${known})`,
      )
    }
    if (key.state === 'destroyed') {
      throw new ApiError(409, 'key_destroyed', `key '${name}' version ${key.version} is destroyed`)
    }
    if (key.state !== 'enabled') {
      throw new ApiError(
        409,
        'key_disabled',
        `key '${name}' version ${key.version} is disabled; POST /v1/keys/${name}/enable enables it`,
      )
    }
    const allowed: readonly KeyType[] = typeof types === 'string' ? [types] : types
    if (!allowed.includes(key.type)) {
      throw new ApiError(
        400,
        'wrong_key_type',
        `key '${name}' is ${key.type}, which this operation does not take (it takes ` +
          `${allowed.join(', ')}); ${key.type} supports ${algorithmsOf(key.type).join(', ')}`,
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
    algorithms: algorithmsOf(key.type),
    state: key.state,
    owner: key.owner,
    tags: key.tags,
    classification: key.classification,
    created_at: key.createdAt,
  }
}
