import { dirname } from 'node:path'
import { socketPaths, type LoadedConfig } from '../config/load.js'
import { stripHsmgateHeadersLua } from './strip-headers.js'
import { enrollListener } from './enroll-listener.js'
import { adminCluster, statsListener } from './stats-listener.js'
import { SDS_SECRET, sdsPaths } from '../crypto-backend/pki/sds-files.js'

const API = 'type.googleapis.com/envoy'

/** Budget for one ext_authz Check call. Past it Envoy responds 503 and never allows. */
const AUTHZ_TIMEOUT = '2s'

/** Upper bound on open client connections; without one Envoy accepts any number. */
const MAX_DOWNSTREAM_CONNECTIONS = 10_000

/**
 * A client must finish the TLS handshake within this time and may then stay idle this long,
 * so that idle or half-open connections cannot hold the connection limit for minutes.
 */
const HANDSHAKE_TIMEOUT = '10s'
const IDLE_TIMEOUT = '60s'

/** Mode of the admin socket: only Envoy's user (and root) may connect. */
const ADMIN_SOCKET_MODE = 0o600

/**
 * Renders the Envoy bootstrap for one gateway node: a mutual-TLS listener in front of the
 * ext_authz service and the crypto backend, both reached over Unix sockets in the runtime
 * directory. The admin interface listens only on a Unix socket there, and the optional stats
 * listener exposes GET /stats/prometheus and GET /ready of it on 127.0.0.1. The result is plain
 * data for `JSON.stringify`.
 */
export function renderBootstrap(config: LoadedConfig, accessLogPath: string): object {
  const sockets = socketPaths(config)
  const stats = statsListener(config, sockets.envoyAdmin)
  return {
    node: { id: config.node_id, cluster: 'hsmgate' },
    admin: {
      address: { pipe: { path: sockets.envoyAdmin, mode: ADMIN_SOCKET_MODE } },
    },
    static_resources: {
      listeners: [
        listener(config, accessLogPath),
        ...(config.listen.enroll_port === undefined
          ? []
          : [
              enrollListener(
                config,
                servingCertSds(config),
                connectionManager(config, accessLogPath),
                HANDSHAKE_TIMEOUT,
              ),
            ]),
        ...(stats === undefined ? [] : [stats]),
      ],
      clusters: [
        pipeCluster('authz', sockets.authz, true),
        pipeCluster('crypto_backend', sockets.backend, false),
        ...(stats === undefined ? [] : [adminCluster(sockets.envoyAdmin)]),
      ],
    },
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type': `${API}.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig`,
            max_active_downstream_connections: MAX_DOWNSTREAM_CONNECTIONS,
          },
        },
      ],
    },
  }
}

function socketAddress(address: string, port: number): object {
  return { socket_address: { address, port_value: port } }
}

function listener(config: LoadedConfig, accessLogPath: string): object {
  return {
    name: 'hsmgate_https',
    address: socketAddress(config.listen.address, config.listen.port),
    // A second gateway on the same port must fail to start, not share the traffic.
    enable_reuse_port: false,
    per_connection_buffer_limit_bytes: config.envoy.max_request_bytes + 64 * 1024,
    filter_chains: [
      {
        transport_socket: downstreamTls(config),
        transport_socket_connect_timeout: HANDSHAKE_TIMEOUT,
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: connectionManager(config, accessLogPath),
          },
        ],
      },
    ],
  }
}

function downstreamTls(config: LoadedConfig): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': `${API}.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
      require_client_certificate: true,
      common_tls_context: {
        tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
        alpn_protocols: ['h2', 'http/1.1'],
        tls_certificate_sds_secret_configs: [servingCertSds(config)],
        validation_context_sds_secret_config: sdsFromFile(
          SDS_SECRET.validation,
          sdsPaths(config.runtime_dir).validation,
        ),
      },
    },
  }
}

/** The serving certificate and key, read from the SDS file that the crypto backend renews. */
export function servingCertSds(config: LoadedConfig): object {
  return sdsFromFile(SDS_SECRET.serving, sdsPaths(config.runtime_dir).serving)
}

/**
 * An SDS secret read from a local file. Envoy reloads it when a file is moved into the watched
 * directory, which is how the writer replaces it atomically; open connections keep their TLS
 * session and new handshakes use the new secret.
 */
function sdsFromFile(name: string, path: string): object {
  return {
    name,
    sds_config: {
      path_config_source: { path, watched_directory: { path: dirname(path) } },
      resource_api_version: 'V3',
    },
  }
}

function connectionManager(config: LoadedConfig, accessLogPath: string): Record<string, unknown> {
  return {
    '@type': `${API}.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
    stat_prefix: 'hsmgate',
    codec_type: 'AUTO',
    use_remote_address: true,
    forward_client_cert_details: 'SANITIZE_SET',
    set_current_client_cert_details: { uri: true, subject: true },
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'REJECT_REQUEST',
    max_request_headers_kb: config.envoy.max_request_headers_kb,
    request_timeout: config.envoy.request_timeout,
    common_http_protocol_options: {
      headers_with_underscores_action: 'REJECT_REQUEST',
      idle_timeout: IDLE_TIMEOUT,
    },
    access_log: [accessLog(accessLogPath)],
    local_reply_config: { mappers: [payloadTooLargeReply(config.envoy.max_request_bytes)] },
    route_config: {
      name: 'hsmgate',
      virtual_hosts: [
        {
          name: 'hsmgate',
          domains: ['*'],
          routes: [
            {
              match: { prefix: '/v1/' },
              route: { cluster: 'crypto_backend', timeout: config.envoy.request_timeout },
            },
          ],
        },
      ],
    },
    http_filters: [
      {
        name: 'envoy.filters.http.lua',
        typed_config: {
          '@type': `${API}.extensions.filters.http.lua.v3.Lua`,
          default_source_code: { inline_string: stripHsmgateHeadersLua },
        },
      },
      {
        name: 'envoy.filters.http.ext_authz',
        typed_config: extAuthz(config),
      },
      {
        name: 'envoy.filters.http.router',
        typed_config: { '@type': `${API}.extensions.filters.http.router.v3.Router` },
      },
    ],
  }
}

function extAuthz(config: LoadedConfig): object {
  return {
    '@type': `${API}.extensions.filters.http.ext_authz.v3.ExtAuthz`,
    transport_api_version: 'V3',
    grpc_service: { envoy_grpc: { cluster_name: 'authz' }, timeout: AUTHZ_TIMEOUT },
    // Fail closed: an unreachable or failing authz service denies with 503.
    failure_mode_allow: false,
    status_on_error: { code: 'ServiceUnavailable' },
    include_peer_certificate: true,
    // The whole body or nothing: Envoy rejects a larger body with 413 before it calls authz.
    with_request_body: {
      max_request_bytes: config.envoy.max_request_bytes,
      allow_partial_message: false,
      pack_as_bytes: true,
    },
  }
}

/**
 * Envoy rejects a body over the limit itself, before authz runs. This gives that response the
 * API's JSON error shape. It carries no decision id because no decision was made.
 */
function payloadTooLargeReply(maxBytes: number): object {
  return {
    filter: {
      status_code_filter: {
        comparison: { op: 'EQ', value: { default_value: 413, runtime_key: 'hsmgate.reply_413' } },
      },
    },
    body_format_override: {
      content_type: 'application/json',
      json_format: {
        error: {
          code: 'payload_too_large',
          message: `request body is larger than ${maxBytes} bytes`,
          decision_id: null,
        },
      },
    },
  }
}

function accessLog(path: string): object {
  return {
    name: 'envoy.access_loggers.file',
    typed_config: {
      '@type': `${API}.extensions.access_loggers.file.v3.FileAccessLog`,
      path,
      log_format: {
        json_format: {
          time: '%START_TIME%',
          method: '%REQ(:METHOD)%',
          path: '%REQ(:PATH)%',
          status: '%RESPONSE_CODE%',
          flags: '%RESPONSE_FLAGS%',
          details: '%RESPONSE_CODE_DETAILS%',
          duration_ms: '%DURATION%',
          bytes_received: '%BYTES_RECEIVED%',
          bytes_sent: '%BYTES_SENT%',
          source: '%DOWNSTREAM_REMOTE_ADDRESS%',
          peer_uri_san: '%DOWNSTREAM_PEER_URI_SAN%',
          peer_serial: '%DOWNSTREAM_PEER_SERIAL%',
          tls_version: '%DOWNSTREAM_TLS_VERSION%',
          principal: '%REQ(X-HSMGATE-PRINCIPAL)%',
          decision_id: '%REQ(X-HSMGATE-DECISION-ID)%',
          denied_decision_id: '%RESP(X-HSMGATE-DECISION-ID)%',
        },
      },
    },
  }
}

function pipeCluster(name: string, path: string, http2: boolean): object {
  const protocol = http2 ? { http2_protocol_options: {} } : { http_protocol_options: {} }
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': `${API}.extensions.upstreams.http.v3.HttpProtocolOptions`,
        explicit_http_config: protocol,
      },
    },
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path } } } }] }],
    },
  }
}
