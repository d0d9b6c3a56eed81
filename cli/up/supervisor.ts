import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import type { Logger } from '../../log/logger.js'

/** How to start one supervised process. */
export interface ChildSpec {
  name: string
  command: string
  args: string[]
  env?: NodeJS.ProcessEnv
  logFile: string
}

/** A child that exited with this code found its configuration unusable; restarting won't help. */
export const EXIT_CONFIG = 78

const BACKOFF_START_MS = 250
const BACKOFF_MAX_MS = 10_000
/** A child that ran this long before it crashed starts again with the shortest delay. */
const STABLE_AFTER_MS = 30_000
const STOP_GRACE_MS = 10_000
const TAIL_LINES = 20

interface Running {
  spec: ChildSpec
  child?: ChildProcess
  log: WriteStream
  restarts: number
  startedAt: number
  timer?: NodeJS.Timeout
  tail: string[]
}

/**
 * Runs processes and restarts each one that exits, after a delay that doubles from 250 ms up
 * to 10 s. A child that exits with code 78 is not restarted and `onFatal` is called instead.
 * Output goes to one log file per child; the last lines stay in memory for error reports.
 */
export class Supervisor {
  private readonly children = new Map<string, Running>()
  private stopping = false

  constructor(
    private readonly logger: Logger,
    private readonly onFatal: (name: string, reason: string) => void,
  ) {}

  start(spec: ChildSpec): void {
    const running: Running = {
      spec,
      log: createWriteStream(spec.logFile, { flags: 'a', mode: 0o600 }),
      restarts: 0,
      startedAt: 0,
      tail: [],
    }
    this.children.set(spec.name, running)
    this.launch(running)
  }

  /** Returns the last message a child wrote, for error reports. */
  lastMessage(name: string): string {
    return lastMessage(this.children.get(name)?.tail ?? [])
  }

  /** Returns how often a child has been restarted since its last stable run. */
  restarts(name: string): number {
    return this.children.get(name)?.restarts ?? 0
  }

  names(): string[] {
    return [...this.children.keys()]
  }

  /** Returns the pid of a running child, or undefined while it is stopped or restarting. */
  pid(name: string): number | undefined {
    return this.children.get(name)?.child?.pid
  }

  pids(): number[] {
    return [...this.children.values()].flatMap((r) => (r.child?.pid ? [r.child.pid] : []))
  }

  private launch(running: Running): void {
    const { spec } = running
    const child = spawn(spec.command, spec.args, {
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    running.child = child
    running.startedAt = Date.now()
    const capture = (chunk: Buffer): void => {
      running.log.write(chunk)
      const lines = chunk.toString('utf8').split('\n').filter(Boolean)
      running.tail.push(...lines)
      running.tail.splice(0, Math.max(0, running.tail.length - TAIL_LINES))
    }
    child.stdout?.on('data', capture)
    child.stderr?.on('data', capture)
    child.on('error', (error) => {
      this.logger.error({ child: spec.name, err: error }, 'could not start process')
    })
    child.on('exit', (code, signal) => this.onExit(running, code, signal))
    this.logger.info({ child: spec.name, child_pid: child.pid }, 'process started')
  }

  private onExit(running: Running, code: number | null, signal: NodeJS.Signals | null): void {
    const { spec } = running
    running.child = undefined
    if (this.stopping) return
    if (code === EXIT_CONFIG) {
      this.logger.error({ child: spec.name, code }, 'process rejected its configuration')
      this.onFatal(spec.name, lastMessage(running.tail))
      return
    }
    if (Date.now() - running.startedAt > STABLE_AFTER_MS) running.restarts = 0
    const delay = Math.min(BACKOFF_START_MS * 2 ** running.restarts, BACKOFF_MAX_MS)
    running.restarts++
    this.logger.warn(
      { child: spec.name, code, signal, restart_in_ms: delay, restarts: running.restarts },
      'process exited; restarting',
    )
    running.timer = setTimeout(() => this.launch(running), delay)
  }

  /**
   * Stops every child: SIGTERM first, SIGKILL for those still running after 10 s. Resolves
   * once all have exited.
   */
  async stop(): Promise<void> {
    this.stopping = true
    const waits = [...this.children.values()].map((running) => this.stopOne(running))
    await Promise.all(waits)
  }

  private async stopOne(running: Running): Promise<void> {
    clearTimeout(running.timer)
    const child = running.child
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(timer)
      this.logger.info({ child: running.spec.name }, 'process stopped')
    }
    await new Promise<void>((resolve) => running.log.end(() => resolve()))
  }
}

/** Extracts the `msg` of the last JSON log line, or the last plain line. */
function lastMessage(tail: string[]): string {
  for (let i = tail.length - 1; i >= 0; i--) {
    const line = tail[i] ?? ''
    try {
      const parsed = JSON.parse(line) as { msg?: unknown }
      if (typeof parsed.msg === 'string') return parsed.msg
    } catch {
      return line
    }
  }
  return 'no output'
}
