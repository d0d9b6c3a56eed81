import type { Logger } from 'pino'

type Level = 'error' | 'warn'

interface Seen {
  level: Level
  msg: string
  /** Fields of the latest suppressed occurrence, so the summary names its ids. */
  fields: Record<string, unknown>
  suppressed: number
  timer?: NodeJS.Timeout
}

/** Keys tracked at most; an occurrence of a further key is logged in full and not tracked. */
const MAX_KEYS = 1_000

/**
 * Rate-limits a repeated error. The first occurrence of a key is logged at once with its fields.
 * Later occurrences within `windowMs` of it are only counted. When the window ends, one summary
 * line with the same message and level reports the count in `repeated`, with the fields of the
 * latest occurrence. The next occurrence after that is logged in full again. Keys should come
 * from a bounded set, such as member names or error codes.
 */
export class RepeatLimiter {
  private readonly seen = new Map<string, Seen>()

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = 60_000,
  ) {}

  /** Logs at error level unless the same key was logged within the window. */
  error(key: string, fields: Record<string, unknown>, msg: string): void {
    this.log('error', key, fields, msg)
  }

  /** Logs at warn level unless the same key was logged within the window. */
  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    this.log('warn', key, fields, msg)
  }

  /** Logs the summaries of all open windows now and stops their timers, such as at shutdown. */
  flush(): void {
    for (const key of [...this.seen.keys()]) this.summarize(key)
  }

  private log(level: Level, key: string, fields: Record<string, unknown>, msg: string): void {
    const seen = this.seen.get(key)
    if (seen !== undefined) {
      seen.suppressed += 1
      seen.fields = fields
      return
    }
    this.logger[level](fields, msg)
    if (this.seen.size >= MAX_KEYS) return

    const entry: Seen = { level, msg, fields, suppressed: 0 }
    entry.timer = setTimeout(() => this.summarize(key), this.windowMs)
    // A pending summary must not keep a stopping process alive.
    entry.timer.unref()
    this.seen.set(key, entry)
  }

  private summarize(key: string): void {
    const seen = this.seen.get(key)
    if (seen === undefined) return
    clearTimeout(seen.timer)
    this.seen.delete(key)
    if (seen.suppressed === 0) return
    this.logger[seen.level](
      { ...seen.fields, repeated: seen.suppressed, window_ms: this.windowMs },
      `${seen.msg} (repeated ${seen.suppressed} times in ${this.windowMs / 1000} s)`,
    )
  }
}

/**
 * Returns a logger whose `error` and `warn` calls pass through a RepeatLimiter keyed by message
 * and error code, for a component whose retries can fail the same way many times. Other levels
 * and child loggers are not limited.
 */
export function limitRepeats(logger: Logger, windowMs = 60_000): Logger {
  const limiter = new RepeatLimiter(logger, windowMs)
  const limited =
    (level: Level) =>
    (first: unknown, second?: unknown): void => {
      const fields: Record<string, unknown> =
        first instanceof Error
          ? { err: first }
          : typeof first === 'object' && first !== null
            ? (first as Record<string, unknown>)
            : {}
      const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : ''
      const err = fields.err instanceof Error ? (fields.err as NodeJS.ErrnoException) : undefined
      limiter[level](`${msg}\u0000${err?.code ?? err?.name ?? ''}`, fields, msg)
    }
  const error = limited('error')
  const warn = limited('warn')
  return new Proxy(logger, {
    get(target, property, receiver) {
      if (property === 'error') return error
      if (property === 'warn') return warn
      return Reflect.get(target, property, receiver) as unknown
    },
  })
}
