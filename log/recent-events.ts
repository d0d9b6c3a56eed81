/** One warning or error as `hsmgate status` shows it. */
export interface RecentEvent {
  time: string
  level: 'warn' | 'error' | 'fatal'
  component: string
  msg: string
  /** Id fields of the log line, such as member, decision_id or child. */
  ids: Record<string, string>
}

const LEVEL_NAMES: Record<number, RecentEvent['level']> = { 40: 'warn', 50: 'error', 60: 'fatal' }
/** Fields copied from a log line; all name things, none contains request data. */
const ID_FIELDS = [
  'alert',
  'app',
  'member',
  'decision_id',
  'child',
  'code',
  'policy_version',
  'key',
  'principal',
]

/**
 * A pino destination that keeps the last `capacity` warning and error lines, already redacted
 * by the logger, in a ring buffer.
 */
export class RecentEvents {
  private readonly events: RecentEvent[] = []

  constructor(private readonly capacity: number) {}

  /** Receives one serialized log line from pino.multistream. */
  write(line: string): void {
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    const level = LEVEL_NAMES[Number(parsed.level)]
    if (level === undefined) return
    const ids: Record<string, string> = {}
    for (const field of ID_FIELDS) {
      const value = parsed[field]
      if (typeof value === 'string' || typeof value === 'number') ids[field] = String(value)
    }
    this.events.push({
      time: new Date(Number(parsed.time)).toISOString(),
      level,
      component: String(parsed.component ?? ''),
      msg: String(parsed.msg ?? ''),
      ids,
    })
    if (this.events.length > this.capacity) this.events.shift()
  }

  list(): RecentEvent[] {
    return [...this.events]
  }
}
