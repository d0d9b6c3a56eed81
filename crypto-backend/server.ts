import { chmodSync, rmSync } from 'node:fs'
import type { Server } from 'node:http'
import { createAdaptorServer } from '@hono/node-server'
import type { Logger } from '../log/logger.js'
import { createApp } from './app.js'
import type { BackendDeps } from './context.js'
import { restrictSocket } from '../config/socket-access.js'

/** A running backend HTTP server on a Unix socket. */
export interface BackendServer {
  close(): Promise<void>
}

/**
 * Serves the backend app on a Unix socket that only the backend's user may open (mode 0600),
 * or with `socketGroupId` also that group's members (mode 0660).
 * A stale socket file from an earlier run is removed first.
 */
export async function startBackendServer(
  deps: BackendDeps,
  socketPath: string,
  logger: Logger,
  socketGroupId?: number,
): Promise<BackendServer> {
  const app = createApp(deps)
  const server = createAdaptorServer({ fetch: app.fetch }) as Server
  rmSync(socketPath, { force: true })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => {
      server.off('error', reject)
      resolve()
    })
  })
  chmodSync(socketPath, 0o600)
  if (socketGroupId !== undefined) restrictSocket(socketPath, socketGroupId)
  logger.info({ socket: socketPath }, 'backend listening')

  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      }),
  }
}
