import { describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../config/load.js'
import { LISTENER_EXTENSION } from '../authz/enroll-listener.js'
import { renderBootstrap } from './bootstrap.js'

// The enrollment listener's shape; test/integration/client-certificates.test.ts runs it in Envoy.

function config(enrollPort: number | undefined): LoadedConfig {
  return {
    file: '/x/hsmgate.yaml',
    dir: '/x',
    node_id: 'node-1',
    trust_domain: 'hsmgate.demo',
    runtime_dir: '/x/run',
    log_level: 'info',
    listen: { address: '127.0.0.1', port: 8443, enroll_port: enrollPort },
    envoy: {
      // No stats listener, so the listener list holds only the mTLS and enrollment listeners.
      stats_port: undefined,
      max_request_bytes: 65536,
      max_request_headers_kb: 32,
      request_timeout: '30s',
    },
    tls: { trust_bundle: '/x/b.pem', server_cert_lifetime: '24h', server_dns_names: ['localhost'] },
    authz: {
      policies: '/x/p',
      decision_secret: '/x/d',
      trusted_proxies: [],
      clone_detection: { suspend: false },
    },
    backend: { decision_secret: '/x/d', decision_max_age_ms: 5000 },
    hsm: { environment: {}, members: [] },
    store: { sqlite: '/x/db' },
    pki: { ca_cert: '/x/ca', ca_key_id: 'ab', crl_lifetime: '24h', client_lifetime: '1h' },
    probe: { cert: '/x/c', key: '/x/k' },
    metrics: {},
  } as LoadedConfig
}

interface Listener {
  name: string
  address: { socket_address: { port_value: number } }
  filter_chains: { transport_socket: unknown; filters: { typed_config: unknown }[] }[]
}

function listeners(enrollPort: number | undefined): Listener[] {
  const bootstrap = renderBootstrap(config(enrollPort), '/x/access.log') as {
    static_resources: { listeners: Listener[] }
  }
  return bootstrap.static_resources.listeners
}

describe('enrollment listener', () => {
  it('is absent without listen.enroll_port', () => {
    expect(listeners(undefined).map((l) => l.name)).toEqual(['hsmgate_https'])
  })

  it('requests no client certificate and routes only enrollment and the CRL', () => {
    const enroll = listeners(8444).find((l) => l.name === 'hsmgate_enroll') as Listener
    expect(enroll.address.socket_address.port_value).toBe(8444)
    const chain = enroll.filter_chains[0]!
    const tls = JSON.stringify(chain.transport_socket)
    expect(tls).toContain('"require_client_certificate":false')
    expect(tls).not.toContain('validation_context')
    const manager = JSON.stringify(chain.filters[0]!.typed_config)
    expect(manager).toContain(`"context_extensions":{"${LISTENER_EXTENSION}":"enroll"}`)
    expect(manager).toContain('"failure_mode_allow":false')
    const routes = (
      chain.filters[0]!.typed_config as {
        route_config: {
          virtual_hosts: { routes: { match: object; route?: { cluster: string } }[] }[]
        }
      }
    ).route_config.virtual_hosts[0]!.routes
    const toBackend = routes.filter((r) => r.route?.cluster === 'crypto_backend')
    expect(toBackend.map((r) => r.match)).toEqual([
      { path: '/v1/enroll' },
      { path: '/v1/enroll/nonce' },
      { path: '/v1/crl' },
    ])
  })

  it('leaves the main listener without the enrollment marker', () => {
    const main = listeners(8444).find((l) => l.name === 'hsmgate_https') as Listener
    expect(JSON.stringify(main)).not.toContain(LISTENER_EXTENSION)
    expect(JSON.stringify(main.filter_chains[0]!.transport_socket)).toContain(
      '"require_client_certificate":true',
    )
  })
})
