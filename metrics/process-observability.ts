import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { LoadedConfig } from '../config/load.js'
import type { Logger } from '../log/logger.js'
import { sdsPaths } from '../crypto-backend/pki/sds-files.js'
import type { MemberStatusSource } from './hsm-metrics.js'
import { watchHsmCluster } from './hsm-metrics.js'
import { pemFile, watchCertificates, type WatchedCertificate } from './certificate-metrics.js'
import { startMetricsServer, type MetricsServer } from './metrics-server.js'
import { collectProcessMetrics } from './registry.js'
import { publishStatus, type StatusPublisher } from './status-file.js'

/** The scrape endpoint and status file of one process. */
export interface Observability {
  close(): Promise<void>
}

/** Returns the first certificate of the serving SDS file, which Envoy loads; no key material. */
export function servingCertificatePem(runtimeDir: string): string {
  const file = JSON.parse(readFileSync(sdsPaths(runtimeDir).serving, 'utf8')) as {
    resources?: Array<{ tls_certificate?: { certificate_chain?: { inline_string?: string } } }>
  }
  const chain = file.resources?.[0]?.tls_certificate?.certificate_chain?.inline_string
  if (chain === undefined) throw new Error('serving SDS file has no certificate chain')
  return chain
}

/** Returns the serving and CA certificates that the backend watches. */
export function gatewayCertificates(config: LoadedConfig): WatchedCertificate[] {
  return [
    { role: 'serving', read: () => servingCertificatePem(config.runtime_dir) },
    { role: 'ca', read: pemFile(config.pki.ca_cert) },
  ]
}

/** Returns notAfter of each certificate as ISO time, or the read error, for the status file. */
function certificateExpiries(certificates: WatchedCertificate[]): Record<string, string> {
  const expiries: Record<string, string> = {}
  for (const { role, read } of certificates) {
    try {
      expiries[role] = new Date(new X509Certificate(read()).validTo).toISOString()
    } catch (error) {
      expiries[role] = `unreadable: ${(error as Error).message}`
    }
  }
  return expiries
}

async function start(
  port: number | undefined,
  logger: Logger,
  status: (metricsPort: number | undefined) => StatusPublisher,
): Promise<Observability> {
  collectProcessMetrics()
  const server: MetricsServer | undefined =
    port === undefined ? undefined : await startMetricsServer(port, logger)
  const publisher = status(server?.port)
  return {
    close: async () => {
      publisher.close()
      await server?.close()
    },
  }
}

/**
 * Starts the backend's scrape endpoint (metrics.backend_port) and status file: HSM member
 * states and counters, and the expiry of the serving and CA certificates.
 */
export function startBackendObservability(
  config: LoadedConfig,
  cluster: MemberStatusSource,
  logger: Logger,
): Promise<Observability> {
  watchHsmCluster(cluster)
  const certificates = gatewayCertificates(config)
  watchCertificates(certificates)
  return start(config.metrics.backend_port, logger, (metricsPort) =>
    publishStatus({
      runtimeDir: config.runtime_dir,
      process: 'crypto-backend',
      logger,
      metricsPort,
      details: () => ({
        members: cluster.status(),
        certificates: certificateExpiries(certificates),
      }),
    }),
  )
}

/** The policy set in force, as the authz status file reports it. */
export interface PolicySetSource {
  policies(): { version: string; policies: ReadonlyMap<string, unknown> }
}

/**
 * Starts the authz scrape endpoint (metrics.authz_port) and status file: the policy set in
 * force, its ids and version hash, and when this process first saw it.
 */
export function startAuthzObservability(
  config: LoadedConfig,
  server: PolicySetSource,
  logger: Logger,
): Promise<Observability> {
  let seen: { version: string; at: string } | undefined
  return start(config.metrics.authz_port, logger, (metricsPort) =>
    publishStatus({
      runtimeDir: config.runtime_dir,
      process: 'authz',
      logger,
      metricsPort,
      details: () => {
        const engine = server.policies()
        // The load time is when this file first saw the version, within one refresh interval.
        if (seen?.version !== engine.version) {
          seen = { version: engine.version, at: new Date().toISOString() }
        }
        return {
          policy: { version: engine.version, ids: [...engine.policies.keys()], loaded_at: seen.at },
        }
      },
    }),
  )
}
