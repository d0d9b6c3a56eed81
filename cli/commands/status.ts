import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import { envoyAdminGet } from '../../envoy/index.js'
import type { Logger } from '../../log/logger.js'
import type { RecentEvent } from '../../log/recent-events.js'
import { CliError, EXIT } from '../cli-error.js'
import {
  pidState,
  processFromSnapshot,
  readSnapshot,
  type ProcessState,
} from '../status/process-probe.js'
import { formatReport, type MemberSummary, type StatusReport } from '../status/status-report.js'

export const statusHelp = `Usage: hsmgate status [options]

Shows a running gateway: each process (up or down, pid), each HSM member's state and counters,
the policy set in force, the expiry of the serving and CA certificates, and the last warnings,
errors and alerts of authz and the crypto backend. It reads the status files in
runtime_dir/status/ and GETs Envoy's /ready through the stats listener on 127.0.0.1, so it
needs read access to the runtime directory and nothing more. Without envoy.stats_port it asks
Envoy's admin socket instead, which only root and Envoy's user may connect to.

Exit codes: 0 when every process is up, 1 when some are down, 3 when none is running.

Options:
  --config FILE  Path of hsmgate.yaml. Default: var/hsmgate.yaml
  --json         Print the report as one JSON object instead of text.
`

/** Exit code when no gateway process is running. */
export const EXIT_NOT_RUNNING = 3
const MAX_EVENTS = 15

/** `hsmgate status`: reports the state of a running gateway. */
export async function runStatus(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', default: 'var/hsmgate.yaml' },
      json: { type: 'boolean', default: false },
    },
  })
  const config = loadConfig(values.config)
  const report = await collectStatus(config)
  const upCount = report.processes.filter((p) => p.up).length
  if (upCount === 0) {
    throw new CliError(
      `gateway ${config.node_id} is not running: no status files in ${config.runtime_dir}/status ` +
        `and no Envoy answering /ready; start it with 'hsmgate up' ` +
        'or the systemd units',
      EXIT_NOT_RUNNING,
    )
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report))
  return upCount === report.processes.length ? EXIT.ok : EXIT.failure
}

/** Collects the report from the status files, Envoy's /ready and the CA certificate. */
export async function collectStatus(config: LoadedConfig): Promise<StatusReport> {
  const authz = processFromSnapshot('authz', readSnapshot(config.runtime_dir, 'authz'))
  const backend = processFromSnapshot(
    'crypto-backend',
    readSnapshot(config.runtime_dir, 'crypto-backend'),
  )
  const envoy = await envoyState(config)
  const processes = [envoy, authz, backend]

  const backendDetails = backend.up ? backend.snapshot?.details : undefined
  const authzDetails = authz.up ? authz.snapshot?.details : undefined
  const certificates = (backendDetails?.certificates as Record<string, string> | undefined) ?? {
    ca: caExpiry(config),
  }
  const events: RecentEvent[] = processes
    .flatMap((p) => (p.up ? (p.snapshot?.events ?? []) : []))
    .sort((a, b) => a.time.localeCompare(b.time))
    .slice(-MAX_EVENTS)

  return {
    node: config.node_id,
    config: config.file,
    processes: processes.map(({ snapshot: _snapshot, ...rest }) => rest),
    members: (backendDetails?.members as MemberSummary[] | undefined) ?? [],
    ...(authzDetails?.policy === undefined
      ? {}
      : { policy: authzDetails.policy as StatusReport['policy'] & object }),
    certificates,
    events,
  }
}

async function envoyState(config: LoadedConfig): Promise<ProcessState> {
  const ready = await envoyAdminGet(config, '/ready')
  const snapshot = readSnapshot(config.runtime_dir, 'envoy')
  const pid =
    snapshot !== undefined && pidState(snapshot.pid) === 'alive' ? snapshot.pid : undefined
  const withPid = pid === undefined ? {} : { pid }
  if (!ready.reached) {
    const note = `no answer to /ready on the ${ready.via} (${ready.reason})`
    return { name: 'envoy', up: false, ...withPid, note }
  }
  const answer = `${ready.status} ${ready.body.trim()}`
  const note = ready.status === 200 ? undefined : `/ready answered ${answer}`
  return { name: 'envoy', up: true, ...withPid, ...(note === undefined ? {} : { note }) }
}

/** Reads the CA certificate's expiry from its file when the backend does not report it. */
function caExpiry(config: LoadedConfig): string {
  try {
    const pem = readFileSync(config.pki.ca_cert, 'utf8')
    return new Date(new X509Certificate(pem).validTo).toISOString()
  } catch (error) {
    return `unreadable: ${(error as Error).message}`
  }
}
