import type { LoadedConfig } from '../config/load.js'

const API = 'type.googleapis.com/envoy'

/** Name of the cluster that reaches Envoy's own admin interface over its Unix socket. */
export const ADMIN_CLUSTER = 'envoy_admin'

/** The admin paths that the stats listener forwards. Both are read-only and take only GET. */
export const STATS_LISTENER_PATHS = ['/stats/prometheus', '/ready'] as const

/**
 * Open connections allowed on the stats listener. Any local user can connect to it, and every
 * connection counts against the gateway's global connection limit, so without this bound one
 * user could fill that limit and lock out applications. A scraper and a few probes need few.
 */
export const STATS_MAX_CONNECTIONS = 64

/**
 * Returns the loopback listener on `envoy.stats_port` that forwards GET /stats/prometheus and
 * GET /ready to the admin socket, so that Prometheus and readiness checks work without access to
 * the runtime directory. Any other method on those paths gets 405 and any other path gets 404,
 * so no request on this port can change Envoy's state or read its certificates or config.
 * Returns undefined when no stats port is configured.
 */
export function statsListener(config: LoadedConfig, adminSocket: string): object | undefined {
  const port = config.envoy.stats_port
  if (port === undefined) return undefined
  return {
    name: 'hsmgate_stats',
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    enable_reuse_port: false,
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.connection_limit',
            typed_config: {
              '@type': `${API}.extensions.filters.network.connection_limit.v3.ConnectionLimit`,
              stat_prefix: 'hsmgate_stats',
              max_connections: STATS_MAX_CONNECTIONS,
            },
          },
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: statsConnectionManager(adminSocket),
          },
        ],
      },
    ],
  }
}

function statsConnectionManager(adminSocket: string): object {
  return {
    '@type': `${API}.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
    stat_prefix: 'hsmgate_stats',
    codec_type: 'HTTP1',
    // Paths are normalised before the exact matches below, so '/ready/../quitquitquit' is
    // '/quitquitquit' and gets 404, and an encoded slash is rejected outright.
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'REJECT_REQUEST',
    request_timeout: '10s',
    common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
    route_config: {
      name: 'hsmgate_stats',
      virtual_hosts: [{ name: 'hsmgate_stats', domains: ['*'], routes: statsRoutes(adminSocket) }],
    },
    http_filters: [
      {
        name: 'envoy.filters.http.router',
        typed_config: { '@type': `${API}.extensions.filters.http.router.v3.Router` },
      },
    ],
  }
}

function statsRoutes(adminSocket: string): object[] {
  const get = { name: ':method', string_match: { exact: 'GET' } }
  const forwarded = STATS_LISTENER_PATHS.map((path) => ({
    match: { path, headers: [get] },
    route: { cluster: ADMIN_CLUSTER, timeout: '10s' },
  }))
  const otherMethods = STATS_LISTENER_PATHS.map((path) => ({
    match: { path },
    direct_response: { status: 405, body: { inline_string: `only GET is allowed on ${path}\n` } },
  }))
  const message =
    `this port serves only GET ${STATS_LISTENER_PATHS.join(' and GET ')}; Envoy's admin ` +
    `interface is on the Unix socket ${adminSocket}, reachable by root and Envoy's user\n`
  const otherPaths = {
    match: { prefix: '/' },
    direct_response: { status: 404, body: { inline_string: message } },
  }
  return [...forwarded, ...otherMethods, otherPaths]
}

/**
 * Returns the cluster that the stats listener forwards to: Envoy's admin interface on its Unix
 * socket, spoken over HTTP/1.1.
 */
export function adminCluster(adminSocket: string): object {
  return {
    name: ADMIN_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: ADMIN_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: adminSocket } } } }] }],
    },
  }
}
