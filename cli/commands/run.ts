import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import { renamedKeyWarnings } from '../../config/renamed-keys.js'
import { projectRoot } from '../../config/project-root.js'
import { renderBootstrap, resolveEnvoyBinary } from '../../envoy/index.js'
import type { Logger } from '../../log/logger.js'
import { publishStatus } from '../../metrics/status-file.js'
import { CliError, EXIT } from '../cli-error.js'
import { envoyStatusDetails } from '../up/gateway.js'

export const runHelp = `Usage: hsmgate run envoy|authz|backend [options]

Runs one gateway process in the foreground, for service managers such as systemd that start,
restart and stop each process on its own. 'hsmgate up' runs all three under one supervisor
instead. SIGTERM and SIGINT are passed to the process; the exit code is the process's.

Processes:
  envoy    Renders the Envoy bootstrap into runtime_dir/envoy.json and runs Envoy. Its admin
           interface listens on runtime_dir/envoy-admin.sock with mode 0600.
  authz    Runs the ext_authz service on runtime_dir/authz.sock.
  backend  Runs the crypto backend on runtime_dir/backend.sock; the only process that reads
           HSM PINs.

Options:
  --config FILE      Path of hsmgate.yaml. Default: ./hsmgate.yaml
  --access-log FILE  Envoy only: file of Envoy's access log, created with mode 0600.
                     Default: logs/envoy-access.log next to hsmgate.yaml
`

const SCRIPTS = { authz: 'authz/main.js', backend: 'crypto-backend/main.js' } as const

/** `hsmgate run PROCESS`: runs one gateway process until it exits. */
export async function runRun(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'hsmgate.yaml' },
      'access-log': { type: 'string' },
    },
  })
  const name = positionals[0]
  if (positionals.length !== 1 || (name !== 'envoy' && name !== 'authz' && name !== 'backend')) {
    throw new CliError(
      `expected one process name, envoy, authz or backend (got '${positionals.join(' ')}'); ` +
        "run 'hsmgate run --help'",
      EXIT.usage,
    )
  }
  const config = loadConfig(values.config)
  if (name === 'envoy') return runEnvoy(config, values['access-log'], logger)
  if (values['access-log'] !== undefined) {
    throw new CliError(`--access-log applies to envoy only, not to ${name}`, EXIT.usage)
  }
  const script = join(projectRoot(), 'dist', SCRIPTS[name])
  return runChild(process.execPath, [script, '--config', config.file], logger)
}

async function runEnvoy(
  config: LoadedConfig,
  accessLogOption: string | undefined,
  logger: Logger,
): Promise<number> {
  const binary = resolveEnvoyBinary(projectRoot())
  for (const warning of renamedKeyWarnings(config)) logger.warn(warning)
  const accessLog = accessLogOption ?? join(config.dir, 'logs', 'envoy-access.log')
  mkdirSync(dirname(accessLog), { recursive: true, mode: 0o700 })
  // Envoy would create the access log with mode 0644; it names principals and addresses.
  closeSync(openSync(accessLog, 'a', 0o600))

  mkdirSync(config.runtime_dir, { recursive: true, mode: 0o700 })
  const bootstrap = join(config.runtime_dir, 'envoy.json')
  writeFileSync(bootstrap, JSON.stringify(renderBootstrap(config, accessLog), null, 2), {
    mode: 0o600,
  })
  const args = ['-c', bootstrap, '--disable-hot-restart', '--log-level', 'warn']
  return runChild(binary, args, logger, (pid) =>
    publishStatus({
      runtimeDir: config.runtime_dir,
      process: 'envoy',
      logger,
      pid,
      details: () => envoyStatusDetails(config),
    }),
  )
}

/**
 * Runs a child with this process's stdio, passes SIGTERM and SIGINT on, and resolves with its
 * exit code (128 + signal number when a signal ended it).
 */
function runChild(
  command: string,
  args: string[],
  logger: Logger,
  onStart?: (pid: number) => { close(): void },
): Promise<number> {
  const child = spawn(command, args, { stdio: 'inherit' })
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal)
  }
  process.on('SIGTERM', forward)
  process.on('SIGINT', forward)
  const started = child.pid === undefined ? undefined : onStart?.(child.pid)
  logger.info({ command, child_pid: child.pid }, 'process started')

  return new Promise((resolve) => {
    child.once('error', (error) => {
      logger.error({ command, err: error }, 'could not start process')
      started?.close()
      resolve(EXIT.failure)
    })
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward)
      process.off('SIGINT', forward)
      started?.close()
      logger.info({ command, code, signal }, 'process exited')
      resolve(code ?? 128 + signalNumber(signal))
    })
  })
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : (constants.signals[signal] ?? 0)
}
