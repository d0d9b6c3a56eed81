import { pino, type Logger, type LevelWithSilent } from 'pino'
import { RecentEvents } from './recent-events.js'

export type { Logger }

/** Levels that the configuration and HSMGATE_LOG_LEVEL accept. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * Field names whose values are replaced by '[redacted]' at any of the first two levels. Code
 * must not log these values at all; the list is a second line of defence.
 */
const SECRET_FIELDS = [
  'pin',
  'so_pin',
  'secret',
  'token',
  'password',
  'authorization',
  'plaintext',
  'private_key',
  'key_pem',
  'certificate',
  'certificate_pem',
  'chain_pem',
]

const redactPaths = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`])

/** Warnings and errors of this process, newest last, for `hsmgate status`. */
export const recentEvents = new RecentEvents(50)

/**
 * Returns the level from HSMGATE_LOG_LEVEL when it is set, else `configured`. Throws TypeError
 * naming the value when the variable contains an unknown level.
 */
export function effectiveLevel(configured: LevelWithSilent): LevelWithSilent {
  const fromEnv = process.env.HSMGATE_LOG_LEVEL
  if (fromEnv === undefined || fromEnv === '') return configured
  if (!(LOG_LEVELS as readonly string[]).includes(fromEnv)) {
    throw new TypeError(
      `HSMGATE_LOG_LEVEL is '${fromEnv}'; expected one of ${LOG_LEVELS.join(', ')}, or unset it`,
    )
  }
  return fromEnv as LevelWithSilent
}

/**
 * Creates the root logger of one process. It writes JSON lines to stderr so that stdout stays
 * free for command results, and keeps the last warnings and errors in `recentEvents`.
 * HSMGATE_LOG_LEVEL overrides the configured level. Components log through
 * `componentLogger(root, name)`.
 */
export function createLogger(component: string, level: LevelWithSilent = 'info'): Logger {
  const streams = pino.multistream([
    { level: 'trace', stream: pino.destination(2) },
    { level: 'warn', stream: recentEvents },
  ])
  return pino(
    {
      name: 'hsmgate',
      level: effectiveLevel(level),
      base: { component, pid: process.pid },
      redact: { paths: redactPaths, censor: '[redacted]' },
    },
    streams,
  )
}

/**
 * Returns the child logger of one part of a process, such as 'hsm' or 'tls' inside the
 * backend. Its lines carry the part as `subsystem`, because the root logger already writes
 * `component` and pino would write a child's `component` as a second key of the same name.
 */
export function componentLogger(parent: Logger, subsystem: string): Logger {
  return parent.child({ subsystem })
}
