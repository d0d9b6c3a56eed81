import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { socketPaths, statsPortField, type LoadedConfig } from '../../config/load.js'
import { renamedKeyWarnings } from '../../config/renamed-keys.js'
import { projectRoot } from '../../config/project-root.js'
import { renderBootstrap, resolveEnvoyBinary } from '../../envoy/index.js'
import type { Logger } from '../../log/logger.js'
import { publishStatus, type StatusPublisher } from '../../metrics/status-file.js'
import { CliError } from '../cli-error.js'
import { assertPortFree } from './port-check.js'
import { waitUntilReady } from './readiness.js'
import { Supervisor } from './supervisor.js'

const READY_DEADLINE_MS = 60_000
const SOCKET_DEADLINE_MS = 30_000
/** A child that crashes this often before the gateway is ready will not start by itself. */
const STARTUP_RESTART_LIMIT = 3

/** A gateway whose processes run under supervision. */
export interface RunningGateway {
  /** Stops every process; resolves when none is left. */
  stop(): Promise<void>
  pids(): number[]
  /** Resolves when a child rejected its configuration, with the reason. */
  fatal: Promise<string>
}

/**
 * Renders the Envoy bootstrap, starts authz and the crypto backend, then Envoy, and resolves
 * once a health request has passed the whole path. Throws CliError with the children's last
 * output when the gateway does not become ready or `signal` aborts the start; nothing is left
 * running then.
 */
export async function startGateway(
  config: LoadedConfig,
  logger: Logger,
  signal: AbortSignal,
): Promise<RunningGateway> {
  const root = projectRoot()
  const envoyBin = resolveEnvoyBinary(root)
  for (const warning of renamedKeyWarnings(config)) logger.warn(warning)
  await assertPortFree(config.listen.address, config.listen.port, 'listener')
  if (config.envoy.stats_port !== undefined) {
    await assertPortFree('127.0.0.1', config.envoy.stats_port, statsPortField(config))
  }
  if (config.listen.enroll_port !== undefined) {
    await assertPortFree(config.listen.address, config.listen.enroll_port, 'enrollment listener')
  }

  const logs = join(config.dir, 'logs')
  mkdirSync(config.runtime_dir, { recursive: true, mode: 0o700 })
  mkdirSync(logs, { recursive: true, mode: 0o700 })
  const accessLog = join(logs, 'envoy-access.log')
  // Envoy would create the access log with mode 0644; it names principals and addresses.
  closeSync(openSync(accessLog, 'a', 0o600))

  const bootstrapPath = join(config.runtime_dir, 'envoy.json')
  const bootstrap = renderBootstrap(config, accessLog)
  writeFileSync(bootstrapPath, JSON.stringify(bootstrap, null, 2), { mode: 0o600 })

  let reportFatal: (reason: string) => void = () => {}
  const fatal = new Promise<string>((resolve) => (reportFatal = resolve))
  let fatalReason: string | undefined
  const supervisor = new Supervisor(logger, (name, reason) => {
    fatalReason = `${name}: ${reason}`
    reportFatal(fatalReason)
  })
  const startupProblem = (): string | undefined => {
    if (signal.aborted) return 'interrupted by a stop signal'
    if (fatalReason !== undefined) return fatalReason
    const looping = supervisor.names().find((n) => supervisor.restarts(n) >= STARTUP_RESTART_LIMIT)
    if (looping !== undefined) {
      return `${looping} exited ${supervisor.restarts(looping)} times: ${supervisor.lastMessage(looping)}`
    }
    return undefined
  }

  const node = process.execPath
  const child = (name: string, script: string) => ({
    name,
    command: node,
    args: [join(root, 'dist', script), '--config', config.file],
    logFile: join(logs, `${name}.log`),
  })
  const sockets = socketPaths(config)
  // Sockets left by an earlier run would make the wait below pass before the children listen.
  rmSync(sockets.authz, { force: true })
  rmSync(sockets.backend, { force: true })
  supervisor.start(child('authz', 'authz/main.js'))
  supervisor.start(child('crypto-backend', 'crypto-backend/main.js'))

  let envoyStatus: StatusPublisher | undefined
  const stop = async (): Promise<void> => {
    envoyStatus?.close()
    await supervisor.stop()
  }
  try {
    const aborted = (): boolean => startupProblem() !== undefined
    await waitForFiles([sockets.authz, sockets.backend], SOCKET_DEADLINE_MS, aborted)
    if (!aborted()) {
      supervisor.start({
        name: 'envoy',
        command: envoyBin,
        args: ['-c', bootstrapPath, '--disable-hot-restart', '--log-level', 'warn'],
        logFile: join(logs, 'envoy.log'),
      })
      // authz and the backend write their own status files; Envoy's is written here.
      envoyStatus = publishStatus({
        runtimeDir: config.runtime_dir,
        process: 'envoy',
        logger,
        pid: () => supervisor.pid('envoy'),
        details: () => envoyStatusDetails(config),
      })
    }
    const probeProblem = aborted()
      ? undefined
      : await waitUntilReady(config, READY_DEADLINE_MS, aborted)
    const problem = startupProblem() ?? probeProblem
    if (problem !== undefined) {
      throw new CliError(`gateway did not become ready: ${problem}; logs are in ${logs}`)
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { stop, pids: () => supervisor.pids(), fatal }
}

/** Details of Envoy's status file: where its listeners and its admin interface are. */
export function envoyStatusDetails(config: LoadedConfig): Record<string, unknown> {
  return {
    listen_port: config.listen.port,
    stats_port: config.envoy.stats_port ?? null,
    admin_socket: socketPaths(config).envoyAdmin,
  }
}

async function waitForFiles(paths: string[], deadlineMs: number, aborted: () => boolean) {
  const end = Date.now() + deadlineMs
  while (!paths.every((p) => existsSync(p))) {
    if (aborted() || Date.now() > end) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
