import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import { EXIT } from '../cli-error.js'
import { gatewayUrl, readyHint } from '../up/curl-example.js'
import { startGateway } from '../up/gateway.js'

export const upHelp = `Usage: hsmgate up [options]

Starts Envoy, the authorization service and the crypto backend from DIR/hsmgate.yaml,
restarts any of them that crashes, and reports ready once a request has passed the whole
path. SIGINT or SIGTERM stops all three.

Options:
  --dir DIR   Directory of the setup made by 'hsmgate init'. Default: ./var
`

/** A stop request from SIGINT or SIGTERM, as a promise and as an AbortSignal for startup. */
export interface StopRequest {
  stopped: Promise<NodeJS.Signals>
  signal: AbortSignal
}

/** Listens for the first SIGINT or SIGTERM. */
export function stopSignal(): StopRequest {
  const controller = new AbortController()
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    const on = (name: NodeJS.Signals): void => {
      controller.abort()
      resolve(name)
    }
    process.once('SIGINT', () => on('SIGINT'))
    process.once('SIGTERM', () => on('SIGTERM'))
  })
  return { stopped, signal: controller.signal }
}

/** `hsmgate up`: runs the gateway in the foreground until a stop signal. */
export async function runUp(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { dir: { type: 'string', default: 'var' } },
  })
  const stop = stopSignal()
  const config = loadConfig(join(values.dir, 'hsmgate.yaml'))
  const gateway = await startGateway(config, logger, stop.signal)

  process.stdout.write(`ready: ${gatewayUrl(config)}\n${readyHint(config)}stop with Ctrl-C\n`)
  const reason = await Promise.race([stop.stopped, gateway.fatal.then((r) => `fatal: ${r}`)])
  logger.info({ reason }, 'stopping gateway')
  await gateway.stop()
  return reason.startsWith('fatal') ? EXIT.failure : EXIT.ok
}
