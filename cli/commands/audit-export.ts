import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import type { Store } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'
import { auditSourceOptions, openAuditSource } from './audit-source.js'

/** Records read per store query. */
const PAGE_SIZE = 1000
const MIN_INTERVAL_MS = 100
const MAX_INTERVAL_MS = 60_000

type ExportStore = Pick<Store, 'auditRecordsAfter' | 'auditWriters'>

/** `hsmgate audit export`: writes records as JSON lines; with --follow, until a signal. */
export async function runAuditExport(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...auditSourceOptions,
      writer: { type: 'string' },
      since: { type: 'string', default: '0' },
      follow: { type: 'boolean', default: false },
      interval: { type: 'string', default: '1000' },
    },
  })
  const since = integerOption('--since', values.since, 0, Number.MAX_SAFE_INTEGER)
  const intervalMs = integerOption('--interval', values.interval, MIN_INTERVAL_MS, MAX_INTERVAL_MS)
  const source = await openAuditSource(values)
  const positions = new Map<string, number>()
  const writers = async (): Promise<string[]> =>
    values.writer === undefined ? source.store.auditWriters() : [values.writer]

  try {
    await exportNew(source.store, await writers(), positions, since)
    if (!values.follow) return EXIT.ok
    const stop = stopSignal()
    logger.debug({ interval_ms: intervalMs }, 'following the audit log')
    while (!(await stop.wait(intervalMs))) {
      await exportNew(source.store, await writers(), positions, since)
    }
    return EXIT.ok
  } finally {
    await source.store.close()
  }
}

/** Writes every record past each writer's position and advances the positions. */
async function exportNew(
  store: ExportStore,
  writers: string[],
  positions: Map<string, number>,
  since: number,
): Promise<void> {
  for (const writer of writers) {
    let after = positions.get(writer) ?? since
    for (;;) {
      const page = await store.auditRecordsAfter(writer, after, PAGE_SIZE)
      for (const record of page) await writeLine(JSON.stringify(record))
      if (page.length > 0) after = page[page.length - 1]!.seq
      if (page.length < PAGE_SIZE) break
    }
    positions.set(writer, after)
  }
}

/** Writes one line to stdout, waiting for the pipe to drain when it is full. */
function writeLine(line: string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(`${line}\n`)) resolve()
    else process.stdout.once('drain', resolve)
  })
}

/** Resolves `wait(ms)` early with true once SIGINT or SIGTERM arrives. */
function stopSignal(): { wait(ms: number): Promise<boolean> } {
  let stopped = false
  let wake: (() => void) | undefined
  const onSignal = (): void => {
    stopped = true
    wake?.()
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return {
    wait: (ms) =>
      new Promise((resolve) => {
        if (stopped) return resolve(true)
        const timer = setTimeout(() => resolve(stopped), ms)
        wake = () => {
          clearTimeout(timer)
          resolve(true)
        }
      }),
  }
}

function integerOption(name: string, value: string, min: number, max: number): number {
  const number = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < min || number > max) {
    throw new CliError(
      `${name} is '${value}'; expected an integer from ${min} to ${max}`,
      EXIT.usage,
    )
  }
  return number
}
