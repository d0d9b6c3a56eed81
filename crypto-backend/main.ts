import { parseArgs } from 'node:util'
import { approvalsDeps } from '../authz/controls-setup.js'
import { loadDecisionSecret } from '../authz/decision-header.js'
import { loadConfig, socketPaths } from '../config/load.js'
import { componentLogger, createLogger } from '../log/logger.js'
import { limitRepeats } from '../log/repeat-limiter.js'
import { openStore } from '../store/index.js'
import { socketGroupId } from '../config/socket-access.js'
import { startBackendObservability } from '../metrics/process-observability.js'
import { TimedAuditBatcher } from '../metrics/timed-audit-batcher.js'
import { HsmCluster } from './hsm/index.js'
import { KeyLifecycle } from './keys/key-lifecycle.js'
import { KeyRegistry } from './keys/key-registry.js'
import { TlsMaintainer } from './pki/tls-maintainer.js'
import { crlFile } from './pki/tls-publisher.js'
import { RevocationWatch, revocationMarkOf } from './pki/revocation-watch.js'
import { prepareSdsDirectory } from './pki/sds-files.js'
import { openClientCertificates } from './pki/client-certificates.js'
import { tpmTrustOf } from './pki/tpm/tpm-trust.js'
import { startBackendServer } from './server.js'
import { startAuditCheckpoints } from './audit/audit-checkpoints.js'

/** Process entry of the crypto backend: `node dist/crypto-backend/main.js --config FILE`. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } })
  const config = loadConfig(values.config ?? 'hsmgate.yaml')
  const logger = createLogger('crypto-backend', config.log_level)

  const store = await openStore(config.store, componentLogger(logger, 'store'))
  const cluster = await HsmCluster.open(config.hsm.members, {
    logger: componentLogger(logger, 'hsm'),
    environment: config.hsm.environment,
  })
  // The SDS files must exist before Envoy starts; `hsmgate up` starts it after this socket.
  // With socket_group, Envoy may run as another user of that group and must read them.
  const socketGroup = socketGroupId(config.socket_group)
  prepareSdsDirectory(config.runtime_dir, socketGroup)
  const tlsLogger = limitRepeats(componentLogger(logger, 'tls'))
  const tls = new TlsMaintainer(config, cluster, store, tlsLogger)
  await tls.start()
  // Revocations written by other nodes or the CLI reach this node's Envoy within a second.
  const revocations = new RevocationWatch({
    mark: revocationMarkOf(store),
    publish: () => tls.publishCrl(),
    logger: tlsLogger,
  })
  await revocations.start()
  const checkpoints = await startAuditCheckpoints(
    config,
    cluster,
    store,
    componentLogger(logger, 'audit'),
  )
  const server = await startBackendServer(
    {
      nodeId: config.node_id,
      cluster,
      store,
      audit: new TimedAuditBatcher(store),
      keys: new KeyRegistry(store),
      lifecycle: new KeyLifecycle(store, cluster),
      decisionSecret: loadDecisionSecret(config.backend.decision_secret),
      decisionMaxAgeMs: config.backend.decision_max_age_ms,
      maxBodyBytes: config.envoy.max_request_bytes,
      logger,
      clientCertificates: await openClientCertificates(config, cluster, store, tls.caSource),
      tpm: tpmTrustOf(config.pki),
      approvals: approvalsDeps(config, store),
      crlFile: crlFile(config),
    },
    socketPaths(config).backend,
    logger,
    socketGroup,
  )
  const observability = await startBackendObservability(config, cluster, logger)

  const stop = async (signal: string): Promise<void> => {
    logger.info({ signal }, 'backend stopping')
    revocations.stop()
    tls.stop()
    await observability.close()
    await server.close()
    // The final checkpoints cover every record written up to now, of every writer.
    await checkpoints.stop().catch((error: unknown) => {
      logger.error({ err: error }, 'final audit checkpoint failed')
    })
    await cluster.close()
    await store.close()
    process.exit(0)
  }
  process.once('SIGTERM', () => void stop('SIGTERM'))
  process.once('SIGINT', () => void stop('SIGINT'))
}

main().catch((error: unknown) => {
  const logger = createLogger('crypto-backend')
  logger.fatal({ err: error }, `backend failed to start: ${(error as Error).message}`)
  process.exit(78)
})
