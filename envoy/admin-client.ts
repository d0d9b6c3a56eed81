import { request, type RequestOptions } from 'node:http'
import { socketPaths, type LoadedConfig } from '../config/load.js'
import { STATS_LISTENER_PATHS } from './stats-listener.js'

/** The outcome of one GET to Envoy's admin interface. */
export type AdminResult =
  | { reached: true; status: number; body: string; via: string }
  | { reached: false; reason: string; via: string }

/** Longer bodies are cut off, so that another program on the stats port cannot fill memory. */
const MAX_BODY_CHARS = 4_000_000

/**
 * GETs a path of Envoy's admin interface. GET /stats/prometheus and GET /ready go through the
 * stats listener on 127.0.0.1 when `envoy.stats_port` is set, which any local user may use.
 * Every other path, and those two without a stats port, go to the admin socket, which only root
 * and Envoy's user may connect to. Never rejects: a connection error resolves with its reason.
 */
export function envoyAdminGet(
  config: LoadedConfig,
  path: string,
  timeoutMs = 2_000,
): Promise<AdminResult> {
  const bare = path.split('?')[0] ?? path
  const statsPort = config.envoy.stats_port
  if (statsPort !== undefined && (STATS_LISTENER_PATHS as readonly string[]).includes(bare)) {
    const via = `stats listener 127.0.0.1:${statsPort}`
    return get({ host: '127.0.0.1', port: statsPort, path }, via, timeoutMs)
  }
  const socket = socketPaths(config).envoyAdmin
  return get({ socketPath: socket, path }, `admin socket ${socket}`, timeoutMs)
}

function get(options: RequestOptions, via: string, timeoutMs: number): Promise<AdminResult> {
  return new Promise((resolve) => {
    const req = request({ ...options, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (body.length < MAX_BODY_CHARS) body += chunk
      })
      res.on('end', () => resolve({ reached: true, status: res.statusCode ?? 0, body, via }))
    })
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)))
    req.on('error', (error: NodeJS.ErrnoException) => {
      resolve({ reached: false, reason: error.code ?? error.message, via })
    })
    req.end()
  })
}
