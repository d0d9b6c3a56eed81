import { createServer } from 'node:net'
import { CliError, EXIT } from '../cli-error.js'

/**
 * Throws CliError when `address:port` cannot be bound, typically because another gateway
 * already listens there. Envoy itself would bind such a port again with SO_REUSEPORT and
 * share the traffic, so the check runs before Envoy starts.
 */
export async function assertPortFree(address: string, port: number, what: string): Promise<void> {
  const server = createServer()
  const problem = await new Promise<string | undefined>((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    server.listen({ host: address, port, exclusive: true }, () => resolve(undefined))
  })
  if (problem === undefined) {
    await new Promise<void>((resolve) => server.close(() => resolve()))
    return
  }
  throw new CliError(
    `${what} ${address}:${port} cannot be bound (${problem}); another gateway may be running ` +
      'there: stop it, or change listen.port, listen.enroll_port and envoy.stats_port in ' +
      "hsmgate.yaml, or create a setup on other ports with 'hsmgate init --dir DIR --port PORT " +
      "--enroll-port PORT --stats-port PORT'",
    EXIT.config,
  )
}
