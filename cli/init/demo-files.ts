import { stringify } from 'yaml'
import type { StateLayout } from './state-layout.js'

/** The demo applications that `hsmgate init` enrols, each with a signing and a data key. */
export const DEMO_APPS = ['payments', 'reporting'] as const

export const DEMO_TRUST_DOMAIN = 'hsmgate.demo'

/** Returns the SPIFFE-style identity of a demo application. */
export function appPrincipal(trustDomain: string, app: string): string {
  return `spiffe://${trustDomain}/app/${app}`
}

/** Returns the identity of the readiness probe that `hsmgate up` sends through the whole path. */
export function probePrincipal(trustDomain: string): string {
  return `spiffe://${trustDomain}/hsmgate/probe`
}

export function softhsmConf(layout: StateLayout): string {
  return [
    `directories.tokendir = ${layout.tokens}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    'slots.removable = false',
    '',
  ].join('\n')
}

export interface ConfigOptions {
  listenAddress: string
  listenPort: number
  /** Port of Envoy's stats listener on 127.0.0.1 (GET /stats/prometheus and GET /ready). */
  statsPort: number
  /** Port of the enrollment listener on the listen address; absent: no such listener. */
  enrollPort?: number
  members: Array<{ name: string; label: string }>
  caKeyId: string
  crlUrl?: string
  /** SPIFFE trust domain of the principals. Default: DEMO_TRUST_DOMAIN */
  trustDomain?: string
}

/** Renders hsmgate.yaml with paths relative to the setup directory. */
export function gatewayConfig(options: ConfigOptions): string {
  const config = {
    node_id: 'node-1',
    trust_domain: options.trustDomain ?? DEMO_TRUST_DOMAIN,
    runtime_dir: 'run',
    log_level: 'info',
    listen: {
      address: options.listenAddress,
      port: options.listenPort,
      enroll_port: options.enrollPort,
    },
    envoy: { stats_port: options.statsPort, max_request_bytes: 65536, request_timeout: '30s' },
    tls: { trust_bundle: 'pki/trust-bundle.pem', server_cert_lifetime: '24h' },
    authz: { policies: 'policies', decision_secret: 'secrets/decision.key' },
    backend: { decision_secret: 'secrets/decision.key', decision_max_age_ms: 30000 },
    hsm: {
      environment: { SOFTHSM2_CONF: 'hsm/softhsm2.conf' },
      members: options.members.map((m) => ({
        name: m.name,
        module: '/usr/lib/softhsm/libsofthsm2.so',
        token_label: m.label,
        pin_file: `secrets/${m.name}.pin`,
        pool_size: 4,
        operation_timeout_ms: 10000,
      })),
    },
    store: { sqlite: 'store/hsmgate.db' },
    pki: { ca_cert: 'pki/ca.crt', ca_key_id: options.caKeyId, crl_url: options.crlUrl },
    probe: { cert: 'pki/probe.crt', key: 'pki/probe.key' },
  }
  return '# hsmgate gateway configuration, written by hsmgate init.\n' + stringify(config)
}
