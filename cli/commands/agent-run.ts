import { parseArgs } from 'node:util'
import { DEFAULT_BACKOFF } from '../../client/backoff.js'
import { renewWithRetries, schedule, type RenewOptions } from '../../client/renewal.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { gatewayOption, keyTypeOption, readOption } from './agent-options.js'

/** Upper bound on retries of one renewal; at the 5-minute cap this spans hours. */
const MAX_ATTEMPTS = 100
/** Maximum single wait; the schedule is read again after it, so clock changes are noticed. */
const MAX_WAIT_MS = 60 * 60_000

/** Returns a sleep that ends early, resolving false, on SIGINT or SIGTERM. */
function stopper(): { sleep: (ms: number) => Promise<boolean>; stopped: () => boolean } {
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())
  process.once('SIGTERM', () => controller.abort())
  const sleep = (ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (controller.signal.aborted) return resolve(false)
      const timer = setTimeout(() => resolve(true), Math.max(0, Math.min(ms, MAX_WAIT_MS)))
      controller.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        resolve(false)
      })
    })
  return { sleep, stopped: () => controller.signal.aborted }
}

/** `hsmgate agent run`: renews when due, once (--once) or until a stop signal. */
export async function runAgentLoop(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: 'string' },
      ca: { type: 'string' },
      dir: { type: 'string' },
      once: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      'reload-command': { type: 'string' },
      'key-type': { type: 'string', default: 'ec-p256' },
    },
  })
  if (values.dir === undefined) throw new CliError('--dir DIR is required', EXIT.usage)
  const options: RenewOptions = {
    gateway: gatewayOption(values.gateway),
    caPem: readOption(values.ca, '--ca'),
    dir: values.dir,
    keyType: keyTypeOption(values['key-type']),
    reloadCommand: values['reload-command'],
    logger,
  }
  const { sleep, stopped } = stopper()
  while (!stopped()) {
    const { due, expires } = scheduleOf(options.dir)
    if (Date.now() >= expires.getTime()) {
      throw new CliError(`the certificate in ${options.dir} has expired; enroll again`)
    }
    if (Date.now() < due.getTime() && !(values.once && values.force)) {
      logger.info({ due: due.toISOString() }, 'certificate not yet due for renewal')
      if (values.once) return EXIT.ok
      await sleep(due.getTime() - Date.now())
      continue
    }
    const notAfter = await renewWithRetries(options, DEFAULT_BACKOFF, MAX_ATTEMPTS, sleep).catch(
      (error: unknown) => {
        throw new CliError(`renewal failed: ${(error as Error).message}`)
      },
    )
    process.stdout.write(
      JSON.stringify({ renewed: true, not_after: notAfter.toISOString() }) + '\n',
    )
    if (values.once) return EXIT.ok
  }
  return EXIT.ok
}

function scheduleOf(dir: string): { due: Date; expires: Date } {
  try {
    return schedule(dir)
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.config)
  }
}
