import { parseArgs } from 'node:util'
import { loadDecisionSecret } from '../authz/decision-header.js'
import { loadConfig, socketPaths } from '../config/load.js'
import { createLogger } from '../log/logger.js'
import { AuditBatcher, SqliteStore } from '../store/index.js'
import { HsmCluster } from './hsm/index.js'
import { KeyLifecycle } from './keys/key-lifecycle.js'
import { KeyRegistry } from './keys/key-registry.js'
import { TlsMaintainer } from './pki/tls-maintainer.js'
import { crlFile } from './pki/tls-publisher.js'
import { openClientCertificates } from './pki/client-certificates.js'
import { startBackendServer } from './server.js'

/** Process entry of the crypto backend: `node dist/crypto-backend/main.js --config FILE`. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } })
  const config = loadConfig(values.config ?? 'hsmgate.yaml')
  const logger = createLogger('crypto-backend', config.log_level)

  const store = new SqliteStore(config.store.sqlite)
  const cluster = await HsmCluster.open(config.hsm.members, {
    logger: logger.child({ component: 'hsm' }),
    environment: config.hsm.environment,
  })
  // The SDS files must exist before Envoy starts; `hsmgate up` starts it after this socket.
  const tls = new TlsMaintainer(config, cluster, store, logger.child({ component: 'tls' }))
  await tls.start()
  const server = await startBackendServer(
    {
      nodeId: config.node_id,
      cluster,
      store,
      audit: new AuditBatcher(store),
      keys: new KeyRegistry(store),
      lifecycle: new KeyLifecycle(store, cluster),
      decisionSecret: loadDecisionSecret(config.backend.decision_secret),
      decisionMaxAgeMs: config.backend.decision_max_age_ms,
      maxBodyBytes: config.envoy.max_request_bytes,
      logger,
      clientCertificates: await openClientCertificates(config, cluster, store),
      crlFile: crlFile(config),
    },
    socketPaths(config).backend,
    logger,
  )

  const stop = async (signal: string): Promise<void> => {
    logger.info({ signal }, 'backend stopping')
    tls.stop()
    await server.close()
    await cluster.close()
    store.close()
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
