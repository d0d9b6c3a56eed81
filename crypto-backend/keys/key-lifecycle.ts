import { randomBytes } from 'node:crypto'
import { ApiError, invalidRequest } from '../api-error.js'
import type { HsmCluster } from '../hsm/index.js'
import { destroyKeyObjects } from '../hsm/key-inventory.js'
import type { Classification, KeyState, KeyType, KeyVersion, Store } from '../../store/index.js'
import { mayCreateInNamespace, namespacePrefix } from './key-namespace.js'

/** Key names: lowercase letters, digits and hyphens, 1 to 64 characters. */
export const KEY_NAME_PATTERN = /^[a-z0-9-]{1,64}$/

export interface CreateKeyInput {
  name: string
  type: KeyType
  owner: string
  tags: string[]
  /** Sensitivity level that policies and dual control rules see. Default: confidential */
  classification?: Classification
}

/** The classification of a key created without one. */
export const DEFAULT_CLASSIFICATION: Classification = 'confidential'

/**
 * Creates, rotates, disables, enables and destroys keys: key material in the HSM cluster, metadata
 * in the store. Changes to one name run one at a time in this process, so that two requests
 * cannot both create the same version.
 */
export class KeyLifecycle {
  private readonly locks = new Map<string, Promise<unknown>>()

  constructor(
    private readonly store: Store,
    private readonly cluster: HsmCluster,
  ) {}

  /**
   * Creates version 1 of a new key owned by `input.owner`. A name outside the owner's namespace
   * (see key-namespace.ts) is a 403, checked before existence so that the response does not
   * reveal whether another application's key exists. A name that exists (even destroyed) is a 409.
   */
  async create(input: CreateKeyInput): Promise<KeyVersion> {
    checkName(input.name)
    await this.checkNamespace(input.name, input.owner)
    return this.serialized(input.name, async () => {
      if ((await this.store.keyVersions(input.name)).length > 0) {
        throw new ApiError(409, 'key_exists', `key '${input.name}' exists; names are never reused`)
      }
      return this.generate({ ...input, version: 1 })
    })
  }

  /** Adds a new version with the same type; encrypt and sign then use it. */
  rotate(name: string): Promise<KeyVersion> {
    return this.serialized(name, async () => {
      const latest = await this.latest(name)
      if (latest.state === 'destroyed') {
        throw new ApiError(409, 'key_destroyed', `key '${name}' is destroyed and cannot rotate`)
      }
      return this.generate({
        name,
        type: latest.type,
        owner: latest.owner,
        tags: latest.tags,
        classification: latest.classification,
        version: latest.version + 1,
        state: latest.state,
      })
    })
  }

  /** Sets every version that is not destroyed to `state`. */
  setState(name: string, state: Exclude<KeyState, 'destroyed'>): Promise<KeyVersion[]> {
    return this.serialized(name, async () => {
      const versions = await this.store.keyVersions(name)
      if (latestOf(name, versions).state === 'destroyed') {
        throw new ApiError(409, 'key_destroyed', `key '${name}' is destroyed`)
      }
      const changed = versions.filter((v) => v.state !== 'destroyed').map((v) => ({ ...v, state }))
      for (const version of changed) await this.store.putKeyVersion(version)
      return changed
    })
  }

  /** Sets the classification of every version, so that policies see it from the next request. */
  classify(name: string, classification: Classification): Promise<KeyVersion[]> {
    return this.serialized(name, async () => {
      const versions = await this.store.keyVersions(name)
      latestOf(name, versions)
      const changed = versions.map((v) => ({ ...v, classification }))
      for (const version of changed) await this.store.putKeyVersion(version)
      return changed
    })
  }

  /**
   * Removes the key material of every version from every member that answers and marks every
   * version destroyed. Returns the members that could not be reached and still hold material.
   */
  destroy(name: string): Promise<{ versions: number[]; unreachable: string[] }> {
    return this.serialized(name, async () => {
      const versions = await this.store.keyVersions(name)
      latestOf(name, versions)
      const unreachable = new Set<string>()
      for (const version of versions) {
        // The state changes first, so that no request uses a version whose material is going.
        await this.store.putKeyVersion({ ...version, state: 'destroyed' })
        const result = await destroyKeyObjects(this.cluster, Buffer.from(version.ckaId, 'hex'))
        for (const member of result.unreachable) unreachable.add(member)
      }
      return { versions: versions.map((v) => v.version), unreachable: [...unreachable] }
    })
  }

  private async checkNamespace(name: string, owner: string): Promise<void> {
    const registered = async (app: string): Promise<boolean> =>
      (await this.store.application(app)) !== undefined
    if (await mayCreateInNamespace(name, owner, registered)) return
    throw new ApiError(
      403,
      'key_namespace',
      `key name '${name}' is outside the namespace of '${owner}', which may create only keys ` +
        `named '${namespacePrefix(owner)}...'; choose a name with that prefix`,
    )
  }

  private async latest(name: string): Promise<KeyVersion> {
    return latestOf(name, await this.store.keyVersions(name))
  }

  private async generate(
    input: CreateKeyInput & { version: number; state?: KeyState },
  ): Promise<KeyVersion> {
    const id = randomBytes(16)
    const label = `hsmgate:${input.name}:v${input.version}`
    await this.cluster.generateKey(input.type, { id, label })
    const key: KeyVersion = {
      name: input.name,
      version: input.version,
      type: input.type,
      ckaId: id.toString('hex'),
      label,
      state: input.state ?? 'enabled',
      owner: input.owner,
      tags: input.tags,
      classification: input.classification ?? DEFAULT_CLASSIFICATION,
      createdAt: new Date().toISOString(),
    }
    await this.store.putKeyVersion(key)
    return key
  }

  private async serialized<T>(name: string, action: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve()
    const run = previous.then(action, action)
    const settled = run.catch(() => undefined)
    this.locks.set(name, settled)
    try {
      return await run
    } finally {
      if (this.locks.get(name) === settled) this.locks.delete(name)
    }
  }
}

/** Returns the newest of a key's versions, newest first; throws 404 when there is none. */
function latestOf(name: string, versions: KeyVersion[]): KeyVersion {
  const latest = versions[0]
  if (latest === undefined) {
    throw new ApiError(404, 'key_not_found', `key '${name}' not found; GET /v1/keys lists keys`)
  }
  return latest
}

export function checkName(name: string): void {
  if (!KEY_NAME_PATTERN.test(name)) {
    throw invalidRequest(
      `key name ${JSON.stringify(name)} is invalid: use 1 to 64 lowercase letters, digits or hyphens`,
    )
  }
}
