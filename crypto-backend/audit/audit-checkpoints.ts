import type { LoadedConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import type { Store } from '../../store/store.js'
import type { HsmCluster } from '../hsm/index.js'
import { AuditCheckpointer } from './audit-checkpointer.js'
import { openAuditKey, publishAuditPublicKey } from './audit-key.js'
import { auditSettings } from './audit-settings.js'

/**
 * Opens (or at first start generates) the node's audit key, adds its public key to the trusted
 * key file, and starts signing checkpoints. The caller calls stop() at clean shutdown, before it
 * closes the cluster, to sign the final checkpoints.
 */
export async function startAuditCheckpoints(
  config: LoadedConfig,
  cluster: HsmCluster,
  store: Store,
  logger: Logger,
): Promise<AuditCheckpointer> {
  const settings = auditSettings(config)
  const key = await openAuditKey(cluster, config.node_id, logger)
  if (publishAuditPublicKey(settings.publicKeysFile, key.publicKeyPem)) {
    logger.info({ file: settings.publicKeysFile, key_id: key.keyId }, 'audit public key published')
  }
  const checkpointer = new AuditCheckpointer(store, key, {
    signer: config.node_id,
    everyRecords: settings.checkpointRecords,
    intervalMs: settings.checkpointIntervalMs,
    logger,
  })
  checkpointer.start()
  return checkpointer
}
