import type { LoadedConfig } from '../config/load.js'
import { ENROLL_LISTENER, LISTENER_EXTENSION } from '../authz/enroll-listener.js'

const API = 'type.googleapis.com/envoy'

/**
 * Returns the enrollment listener: TLS with the gateway's serving certificate and no client
 * certificate requested, because an enrolling agent has none yet. Every request on it reaches
 * authz with a context extension, and authz maps only POST /v1/enroll there. Envoy itself routes
 * only that exact path to the backend and responds 404 to every other path, so this listener
 * reaches no other operation even if authz were misconfigured.
 *
 * `mainConnectionManager` is the main listener's HTTP connection manager, whose filters (header
 * stripping, ext_authz with the whole body, router) and limits are reused unchanged.
 */
export function enrollListener(
  config: LoadedConfig,
  servingCertificate: object,
  mainConnectionManager: Record<string, unknown>,
  handshakeTimeout: string,
): object {
  const port = config.listen.enroll_port
  if (port === undefined) throw new TypeError('listen.enroll_port is not set')
  return {
    name: 'hsmgate_enroll',
    address: { socket_address: { address: config.listen.address, port_value: port } },
    enable_reuse_port: false,
    per_connection_buffer_limit_bytes: config.envoy.max_request_bytes + 64 * 1024,
    filter_chains: [
      {
        transport_socket: serverOnlyTls(servingCertificate),
        transport_socket_connect_timeout: handshakeTimeout,
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              ...mainConnectionManager,
              stat_prefix: 'hsmgate_enroll',
              // No client certificate exists on this listener, so no client cert details.
              forward_client_cert_details: 'SANITIZE',
              set_current_client_cert_details: undefined,
              route_config: enrollRoutes(config),
            },
          },
        ],
      },
    ],
  }
}

function serverOnlyTls(servingCertificate: object): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': `${API}.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
      require_client_certificate: false,
      common_tls_context: {
        tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
        alpn_protocols: ['h2', 'http/1.1'],
        tls_certificate_sds_secret_configs: [servingCertificate],
      },
    },
  }
}

function enrollRoutes(config: LoadedConfig): object {
  return {
    name: 'hsmgate_enroll',
    virtual_hosts: [
      {
        name: 'hsmgate_enroll',
        domains: ['*'],
        typed_per_filter_config: {
          'envoy.filters.http.ext_authz': {
            '@type': `${API}.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute`,
            check_settings: { context_extensions: { [LISTENER_EXTENSION]: ENROLL_LISTENER } },
          },
        },
        routes: [
          {
            match: { path: '/v1/enroll' },
            route: { cluster: 'crypto_backend', timeout: config.envoy.request_timeout },
          },
          {
            match: { path: '/v1/enroll/nonce' },
            route: { cluster: 'crypto_backend', timeout: config.envoy.request_timeout },
          },
          {
            match: { path: '/v1/crl' },
            route: { cluster: 'crypto_backend', timeout: config.envoy.request_timeout },
          },
          {
            match: { prefix: '/' },
            direct_response: {
              status: 404,
              body: { inline_string: '{"error":{"code":"unknown_route","decision_id":null}}' },
            },
          },
        ],
      },
    ],
  }
}
