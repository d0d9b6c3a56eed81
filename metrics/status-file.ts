import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from '../log/logger.js'
import { recentEvents } from '../log/logger.js'
import type { RecentEvent } from '../log/recent-events.js'

/** Processes that publish a status file. */
export type StatusProcess = 'authz' | 'crypto-backend' | 'envoy'

/** The content of `<runtime_dir>/status/<process>.json`, read by `hsmgate status`. */
export interface StatusSnapshot {
  process: StatusProcess
  pid: number
  started_at: string
  updated_at: string
  /** Scrape port of this process, when metrics are on. */
  metrics_port?: number
  /** The last warnings and errors this process logged. */
  events: RecentEvent[]
  /** Process-specific facts: policy set, HSM members, certificate expiries. */
  details: Record<string, unknown>
}

/** How often a status file is rewritten, in milliseconds. */
export const STATUS_REFRESH_MS = 2_000

/** Returns the directory of status files inside the runtime directory. */
export function statusDir(runtimeDir: string): string {
  return join(runtimeDir, 'status')
}

/** A status file that a process keeps current until it stops. */
export interface StatusPublisher {
  /** Rewrites the file now, such as after a state change. */
  refresh(): void
  /** Stops refreshing and removes the file, so that status reports the process as stopped. */
  close(): void
}

/**
 * Writes this process's status file now and every 2 s, replacing it by rename so a reader never
 * sees half a file. The file (mode 0640) contains names, states and times, never request data.
 * A failed write is logged once per distinct error and retried at the next refresh.
 */
export function publishStatus(options: {
  runtimeDir: string
  process: StatusProcess
  logger: Logger
  metricsPort?: number
  /**
   * Process id to report when it differs from this process, such as a child Envoy. A function
   * is asked at each refresh; while it returns undefined (a child between restarts) the file is
   * not rewritten.
   */
  pid?: number | (() => number | undefined)
  details: () => Record<string, unknown>
}): StatusPublisher {
  const dir = statusDir(options.runtimeDir)
  const file = join(dir, `${options.process}.json`)
  const startedAt = new Date().toISOString()
  let lastError: string | undefined

  const refresh = (): void => {
    const pid = typeof options.pid === 'function' ? options.pid() : (options.pid ?? process.pid)
    if (pid === undefined) return
    const snapshot: StatusSnapshot = {
      process: options.process,
      pid,
      started_at: startedAt,
      updated_at: new Date().toISOString(),
      ...(options.metricsPort === undefined ? {} : { metrics_port: options.metricsPort }),
      events: recentEvents.list(),
      details: options.details(),
    }
    try {
      // Group-writable: under systemd each process writes its own file as its own user, and
      // the runtime directory's group is the one they share.
      mkdirSync(dir, { recursive: true, mode: 0o770 })
      const temporary = `${file}.${process.pid}.tmp`
      writeFileSync(temporary, `${JSON.stringify(snapshot, null, 2)}\n`, { mode: 0o640 })
      renameSync(temporary, file)
      lastError = undefined
    } catch (error) {
      const message = (error as Error).message
      if (message !== lastError) {
        options.logger.error({ err: error, file }, 'cannot write the status file')
      }
      lastError = message
    }
  }

  refresh()
  const timer = setInterval(refresh, STATUS_REFRESH_MS)
  timer.unref()
  return {
    refresh,
    close: () => {
      clearInterval(timer)
      rmSync(file, { force: true })
    },
  }
}
