import { parseArgs } from 'node:util'
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../../client/backoff.js'
import {
  AgentStoppedError,
  RenewalRejectedError,
  renewWithRetries,
  schedule,
  type RenewOptions,
} from '../../client/renewal.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import {
  gatewayOption,
  keyTypeOption,
  readOption,
  renewAtOption,
  retryDurationOption,
} from './agent-options.js'

/** Upper bound on retries of one renewal; at the 5-minute cap this spans hours. */
const MAX_ATTEMPTS = 100
/** Maximum single wait; the schedule is read again after it, so clock changes are noticed. */
const MAX_WAIT_MS = 60 * 60_000
/**
 * Minimum time between two renewals. A certificate whose renewal point falls right after its
 * issuance (a low --renew-at with a short lifetime) then renews every 10 s rather than nonstop.
 */
const MIN_RENEWAL_SPACING_MS = 10_000

/** Returns a sleep that ends early, resolving false, on SIGINT or SIGTERM. */
function stopper(logger: Logger): {
  sleep: (ms: number) => Promise<boolean>
  stopped: () => boolean
} {
  const controller = new AbortController()
  const stop = (signal: string) => () => {
    logger.info({ signal }, 'stop signal received; the agent stops after the current step')
    controller.abort()
  }
  process.once('SIGINT', stop('SIGINT'))
  process.once('SIGTERM', stop('SIGTERM'))
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

/** Reads the retry timing options, naming the option that is out of range. */
function backoffOf(values: { 'retry-initial'?: string; 'retry-max'?: string }): BackoffPolicy {
  const baseMs =
    values['retry-initial'] === undefined
      ? DEFAULT_BACKOFF.baseMs
      : retryDurationOption(values['retry-initial'], '--retry-initial', 100, 10 * 60_000)
  const capMs =
    values['retry-max'] === undefined
      ? DEFAULT_BACKOFF.capMs
      : retryDurationOption(values['retry-max'], '--retry-max', 1_000, 60 * 60_000)
  if (capMs < baseMs) {
    throw new CliError(
      `--retry-max ${values['retry-max'] ?? '5m'} is shorter than --retry-initial ` +
        `${values['retry-initial'] ?? '1s'}; set --retry-max to at least the initial delay`,
      EXIT.usage,
    )
  }
  return { baseMs, capMs }
}

/**
 * `hsmgate agent run`: renews when due, once (--once) or until SIGINT or SIGTERM. A stop signal
 * lets a renewal in flight finish and write its files, then the agent exits with 0. A refusal
 * that a retry cannot fix exits with 1.
 */
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
      'renew-at': { type: 'string' },
      'retry-initial': { type: 'string' },
      'retry-max': { type: 'string' },
    },
  })
  if (values.dir === undefined) throw new CliError('--dir DIR is required', EXIT.usage)
  const options: RenewOptions = {
    gateway: gatewayOption(values.gateway),
    caPem: readOption(values.ca, '--ca'),
    dir: values.dir,
    keyType: keyTypeOption(values['key-type']),
    reloadCommand: values['reload-command'],
    renewAt: renewAtOption(values['renew-at']),
    logger,
  }
  const backoff = backoffOf(values)
  const { sleep, stopped } = stopper(logger)
  let lastRenewal = 0
  while (!stopped()) {
    const { due, expires, serial } = scheduleOf(options.dir, options.renewAt)
    if (Date.now() >= expires.getTime()) {
      throw new CliError(
        `the certificate ${serial} in ${options.dir} expired at ${expires.toISOString()}, and ` +
          'renewal needs a valid one; enroll again with a new token',
      )
    }
    if (Date.now() < due.getTime() && !(values.once && values.force)) {
      logger.info({ serial, due: due.toISOString() }, 'certificate not yet due for renewal')
      if (values.once) return EXIT.ok
      await sleep(due.getTime() - Date.now())
      continue
    }
    const spacing = lastRenewal + MIN_RENEWAL_SPACING_MS - Date.now()
    if (spacing > 0) {
      logger.warn({ wait_ms: spacing }, 'renewal due again at once; waiting the minimum spacing')
      await sleep(spacing)
      continue
    }
    const notAfter = await renew(options, backoff, sleep)
    if (notAfter === undefined) break
    lastRenewal = Date.now()
    process.stdout.write(
      JSON.stringify({ renewed: true, not_after: notAfter.toISOString() }) + '\n',
    )
    if (values.once) return EXIT.ok
  }
  logger.info({ dir: options.dir }, 'agent stopped')
  return EXIT.ok
}

/** Renews with retries; returns undefined when a stop signal ended the wait for a retry. */
async function renew(
  options: RenewOptions,
  backoff: BackoffPolicy,
  sleep: (ms: number) => Promise<boolean>,
): Promise<Date | undefined> {
  try {
    return await renewWithRetries(options, backoff, MAX_ATTEMPTS, sleep)
  } catch (error) {
    if (error instanceof AgentStoppedError) return undefined
    if (error instanceof RenewalRejectedError) {
      throw new CliError(`renewal rejected: ${error.message}`, EXIT.failure, { cause: error })
    }
    throw new CliError(`renewal failed: ${(error as Error).message}`, EXIT.failure, {
      cause: error,
    })
  }
}

function scheduleOf(dir: string, renewAt?: number): { due: Date; expires: Date; serial: string } {
  try {
    return schedule(dir, renewAt)
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.config)
  }
}
