import { request } from 'node:http'
import { createServer } from 'node:net'
import { statsPortField, type LoadedConfig } from '../../config/load.js'
import { envoyAdminGet } from '../../envoy/index.js'
import type { StatusProcess } from '../../metrics/status-file.js'
import { pidState, readSnapshot } from '../status/process-probe.js'
import { fail, ok, type CheckResult } from './check-result.js'
import { socketOwnedBy } from './socket-owner.js'

interface PortUse {
  field: string
  address: string
  port: number
}

/** Returns every TCP port of the configuration with the address it binds. */
export function configuredPorts(config: LoadedConfig): PortUse[] {
  const ports: PortUse[] = [
    { field: 'listen.port', address: config.listen.address, port: config.listen.port },
  ]
  const optional: Array<[string, string, number | undefined]> = [
    ['listen.enroll_port', config.listen.address, config.listen.enroll_port],
    [statsPortField(config), '127.0.0.1', config.envoy.stats_port],
    ['metrics.authz_port', '127.0.0.1', config.metrics.authz_port],
    ['metrics.backend_port', '127.0.0.1', config.metrics.backend_port],
  ]
  for (const [field, address, port] of optional) {
    if (port !== undefined) ports.push({ field, address, port })
  }
  return ports
}

/**
 * Checks each configured port: free, or held by this gateway. A held port counts as this
 * gateway's when the process that serves it here (Envoy for listeners, authz or the backend for
 * metrics ports), as named by the status file in this configuration's runtime directory, is
 * running and holds the listening socket. When that process's sockets cannot be read (another
 * user's process without root), Envoy's listener statistics or the hsmgate metrics served on
 * the port are taken as evidence instead.
 */
export async function checkPorts(config: LoadedConfig): Promise<CheckResult[]> {
  const stats = await envoyAdminGet(config, '/stats/prometheus?filter=listener')
  const listeners = stats.reached && stats.status === 200 ? stats.body : undefined
  const results: CheckResult[] = []
  for (const use of configuredPorts(config)) {
    const name = `port ${use.field}`
    const error = await bindError(use.address, use.port)
    if (error === undefined) {
      results.push(ok(name, `${use.address}:${use.port} is free`))
    } else if (await heldByGateway(config, use, listeners)) {
      results.push(ok(name, `${use.address}:${use.port} is in use by this gateway`))
    } else {
      results.push(
        fail(
          name,
          `${use.address}:${use.port} is in use by another program (${error})`,
          `find it with 'ss -ltnp sport = :${use.port}' and stop it, or choose another ${use.field}`,
        ),
      )
    }
  }
  return results
}

/**
 * Tells whether this gateway's process holds the port; see checkPorts. In the fallback, Envoy
 * names each listener's statistics after its address, such as
 * `envoy_listener_address="127.0.0.1_8443"` or `"[::]_8443"`, so a port's listener shows up as
 * a label value ending in `_PORT"`.
 */
async function heldByGateway(
  config: LoadedConfig,
  use: PortUse,
  listeners: string | undefined,
): Promise<boolean> {
  const owner = servingProcess(use.field)
  let snapshot
  try {
    snapshot = readSnapshot(config.runtime_dir, owner)
  } catch {
    snapshot = undefined
  }
  if (snapshot === undefined || pidState(snapshot.pid) === 'gone') return false
  const owned = socketOwnedBy(use.port, snapshot.pid)
  if (owned !== 'unknown') return owned === 'yes'
  if (use.field.startsWith('metrics.')) {
    return (await httpGet(use.port, '/metrics'))?.includes('hsmgate_') ?? false
  }
  return listeners?.includes(`_${use.port}"`) === true
}

/** Returns the process of this gateway that listens on the port of a configuration field. */
function servingProcess(field: string): StatusProcess {
  if (field === 'metrics.authz_port') return 'authz'
  if (field === 'metrics.backend_port') return 'crypto-backend'
  return 'envoy'
}

function bindError(address: string, port: number): Promise<string | undefined> {
  const server = createServer()
  return new Promise((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    server.listen({ host: address, port, exclusive: true }, () =>
      server.close(() => resolve(undefined)),
    )
  })
}

/** GETs a path on 127.0.0.1; resolves with the body, or undefined on any failure. */
function httpGet(port: number, path: string, timeoutMs = 2_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk.slice(0, 1_000_000)))
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(undefined))
    req.end()
  })
}
