import { join } from 'node:path'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import { HsmCluster } from '../../crypto-backend/hsm/index.js'
import { KeyLifecycle } from '../../crypto-backend/keys/key-lifecycle.js'
import type { Logger } from '../../log/logger.js'
import { openStore, type Store } from '../../store/index.js'

/** The store and HSM cluster of a setup, opened by `hsmgate keys` for one command. */
export interface KeysSession {
  config: LoadedConfig
  store: Store
  cluster?: HsmCluster
  lifecycle?: KeyLifecycle
  close(): Promise<void>
}

/**
 * Opens DIR/hsmgate.yaml and its store; with `hsm`, also the HSM cluster with the members'
 * PINs. A running gateway keeps working meanwhile: SoftHSM2 tokens and the SQLite store accept
 * a second process.
 */
export async function openKeysSession(
  dir: string,
  logger: Logger,
  hsm: boolean,
): Promise<KeysSession> {
  const config = loadConfig(join(dir, 'hsmgate.yaml'))
  const store = await openStore(config.store)
  let cluster: HsmCluster | undefined
  try {
    if (hsm) {
      cluster = await HsmCluster.open(config.hsm.members, {
        logger,
        environment: config.hsm.environment,
        recheckIntervalMs: 60_000,
      })
    }
  } catch (error) {
    await store.close()
    throw error
  }
  return {
    config,
    store,
    cluster,
    lifecycle: cluster === undefined ? undefined : new KeyLifecycle(store, cluster),
    close: async () => {
      await cluster?.close()
      await store.close()
    },
  }
}
