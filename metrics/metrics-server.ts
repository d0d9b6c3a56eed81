import { createServer, type Server } from 'node:http'
import type { Logger } from '../log/logger.js'
import { metricsRegistry } from './registry.js'

/** A running scrape endpoint. */
export interface MetricsServer {
  readonly port: number
  close(): Promise<void>
}

/** The only address a scrape endpoint binds: metrics name keys and applications. */
export const METRICS_ADDRESS = '127.0.0.1'

/**
 * Serves GET /metrics in the Prometheus text format on 127.0.0.1:`port` (0 picks a free port).
 * Other paths get 404 and other methods 405. Rejects when the port cannot be bound.
 */
export async function startMetricsServer(port: number, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; scrape /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end()
      return
    }
    metricsRegistry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(text),
      (error: unknown) => {
        logger.error({ err: error }, 'metrics collection failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n')
      },
    )
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: METRICS_ADDRESS, port, exclusive: true }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  logger.info({ address: METRICS_ADDRESS, port: bound }, 'metrics endpoint listening')
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
