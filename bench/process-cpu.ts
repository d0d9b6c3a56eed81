import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/** CPU time (user + system) of one process, in milliseconds. */
export interface ProcessCpu {
  readonly pid: number
  readonly role: string
  readonly cpuMs: number
}

/** Names a gateway process by its command line: envoy, authz, crypto-backend or other. */
function roleOf(commandLine: string): string {
  if (commandLine.includes('authz/main.js')) return 'authz'
  if (commandLine.includes('crypto-backend/main.js')) return 'crypto-backend'
  if (/(^|\/)envoy\0/.test(commandLine)) return 'envoy'
  if (commandLine.includes('p11-kit')) return 'p11-kit'
  return 'other'
}

/** Parses `/proc/PID/stat`: returns [parent pid, user + system time in clock ticks]. */
function readStat(pid: number): [number, number] | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) may contain spaces, so fields are counted after its ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return [Number(fields[1]), Number(fields[11]) + Number(fields[12])]
}

let ticksPerSecond: number | undefined

/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`, 100 on common Linux kernels). */
function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
  return ticksPerSecond
}

/**
 * Returns the CPU time so far of every descendant of `rootPid` (Linux /proc only). A process
 * that exited is missing, so compare two samples by pid.
 */
export function descendantCpu(rootPid: number): ProcessCpu[] {
  const children = new Map<number, number[]>()
  const ticks = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const stat = readStat(pid)
    if (stat === undefined) continue
    ticks.set(pid, stat[1])
    children.set(stat[0], [...(children.get(stat[0]) ?? []), pid])
  }
  const msPerTick = 1000 / clockTicks()
  const result: ProcessCpu[] = []
  const pending = [...(children.get(rootPid) ?? [])]
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    pending.push(...(children.get(pid) ?? []))
    let commandLine = ''
    try {
      commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      continue
    }
    result.push({ pid, role: roleOf(commandLine), cpuMs: (ticks.get(pid) ?? 0) * msPerTick })
  }
  return result
}

/**
 * Returns CPU milliseconds per operation for each role between two samples, plus `load-client`
 * for this process itself from `process.cpuUsage`.
 */
export function cpuPerOperation(
  before: ProcessCpu[],
  after: ProcessCpu[],
  selfMicros: NodeJS.CpuUsage,
  operations: number,
): Record<string, number> {
  const start = new Map(before.map((p) => [p.pid, p.cpuMs]))
  const totals: Record<string, number> = {}
  for (const p of after) {
    const used = p.cpuMs - (start.get(p.pid) ?? 0)
    totals[p.role] = (totals[p.role] ?? 0) + used
  }
  totals['load-client'] = (selfMicros.user + selfMicros.system) / 1000
  const perOperation: Record<string, number> = {}
  const divisor = Math.max(1, operations)
  let sum = 0
  for (const [role, ms] of Object.entries(totals)) {
    perOperation[role] = Math.round((ms / divisor) * 1000) / 1000
    sum += ms
  }
  perOperation['total'] = Math.round((sum / divisor) * 1000) / 1000
  return perOperation
}
