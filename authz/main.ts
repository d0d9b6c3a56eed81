// Process entry of the ext_authz service: node dist/authz/main.js --config FILE
import { parseArgs } from 'node:util'
import { loadConfig, policyDir, socketPaths } from '../config/load.js'
import { componentLogger, createLogger, type Logger } from '../log/logger.js'
import { openStore } from '../store/open-store.js'
import { loadDecisionSecret } from './decision-header.js'
import { trustedProxies } from './client-address.js'
import { startAuthzServer } from './server.js'
import { alerterFromConfig, runtimeControls } from './controls-setup.js'
import { quotaCounterFor } from './quota-store-counter.js'
import { socketGroupId } from '../config/socket-access.js'
import { startAuthzObservability } from '../metrics/process-observability.js'

/** Exit code for an unusable configuration or store (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78

const USAGE = `usage: node dist/authz/main.js --config FILE

Runs the hsmgate ext_authz gRPC service on <runtime_dir>/authz.sock.

options:
  -c, --config FILE  path of hsmgate.yaml
  -h, --help         print this help
`

async function main(): Promise<number> {
  let values: { config?: string; help?: boolean }
  try {
    values = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (values.config === undefined) {
    process.stderr.write(`missing --config\n${USAGE}`)
    return 2
  }

  let logger: Logger | undefined
  // A configuration or store that cannot be opened at start exits with EXIT_CONFIG, as the
  // backend does, so `hsmgate up` and the systemd units stop instead of restarting in a loop.
  // NOTE: this includes a PostgreSQL server that is down only briefly at start.
  let exitCode = EXIT_CONFIG
  try {
    const config = loadConfig(values.config)
    logger = createLogger('authz', config.log_level)
    const socketPath = socketPaths(config).authz
    const policies = policyDir(config)
    // The store is shared with the backend (SQLite WAL, or PostgreSQL shared by all nodes); authz
    // reads applications and keys from it and appends its own audit chain.
    const store = await openStore(config.store, componentLogger(logger, 'store'))
    exitCode = 1
    const alerter = alerterFromConfig(config, componentLogger(logger, 'alerts'))
    try {
      const server = await startAuthzServer({
        socketPath,
        policyDir: policies,
        store,
        nodeId: config.node_id,
        decisionSecret: loadDecisionSecret(config.authz.decision_secret),
        trustDomain: config.trust_domain,
        logger,
        certificateChecks: {
          enrollPort: config.listen.enroll_port,
          trustedProxies: trustedProxies(config.authz.trusted_proxies),
          cloneDetection: {
            ledger: store,
            suspend: config.authz.clone_detection.suspend,
            alerter,
          },
        },
        controls: runtimeControls(
          config,
          store,
          alerter,
          quotaCounterFor(store, componentLogger(logger, 'quotas')),
        ),
        socketGroupId: socketGroupId(config.socket_group),
      })
      const observability = await startAuthzObservability(config, server, logger)
      logger.info(
        { socket: socketPath, policies, trust_domain: config.trust_domain },
        'authz ready',
      )
      await waitForStopSignal(logger)
      await observability.close()
      await server.close()
    } finally {
      await store.close()
    }
    return 0
  } catch (error) {
    if (logger === undefined) {
      process.stderr.write(`authz: ${(error as Error).message}\n`)
    } else {
      logger.fatal({ err: error }, `authz failed to start: ${(error as Error).message}`)
    }
    return exitCode
  }
}

function waitForStopSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      logger.info({ signal }, 'authz stopping')
      resolve()
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

process.exitCode = await main()
