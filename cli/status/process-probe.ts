import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { StatusProcess, StatusSnapshot } from '../../metrics/status-file.js'
import { STATUS_REFRESH_MS, statusDir } from '../../metrics/status-file.js'

/** The state of one process as `hsmgate status` reports it. */
export interface ProcessState {
  name: StatusProcess
  up: boolean
  pid?: number
  /** Reason the process counts as down, or a warning about a running one. */
  note?: string
  snapshot?: StatusSnapshot
}

/** A status file older than this belongs to a process that stopped refreshing it. */
const STALE_AFTER_MS = STATUS_REFRESH_MS * 5

/** Returns 'alive' or 'gone' for a pid, without needing to own the process. */
export function pidState(pid: number): 'alive' | 'gone' {
  try {
    process.kill(pid, 0)
    return 'alive'
  } catch (error) {
    // EPERM: the process exists but belongs to another user, as under systemd.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? 'alive' : 'gone'
  }
}

/** Reads a status file; undefined when it does not exist. Throws on other read errors. */
export function readSnapshot(runtimeDir: string, name: StatusProcess): StatusSnapshot | undefined {
  let text: string
  try {
    text = readFileSync(join(statusDir(runtimeDir), `${name}.json`), 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  return JSON.parse(text) as StatusSnapshot
}

/** Judges a process from its status file: present, its pid alive, and refreshed recently. */
export function processFromSnapshot(
  name: StatusProcess,
  snapshot: StatusSnapshot | undefined,
  nowMs = Date.now(),
): ProcessState {
  if (snapshot === undefined) return { name, up: false, note: 'not running (no status file)' }
  if (pidState(snapshot.pid) === 'gone') {
    return { name, up: false, pid: snapshot.pid, note: 'not running (pid gone, stale file)' }
  }
  const age = nowMs - Date.parse(snapshot.updated_at)
  const note =
    age > STALE_AFTER_MS ? `status not refreshed for ${Math.round(age / 1000)} s` : undefined
  return { name, up: true, pid: snapshot.pid, snapshot, ...(note === undefined ? {} : { note }) }
}
