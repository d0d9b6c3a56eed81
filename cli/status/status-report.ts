import type { RecentEvent } from '../../log/recent-events.js'
import type { ProcessState } from './process-probe.js'

/** Everything `hsmgate status` reports, also printed as JSON with --json. */
export interface StatusReport {
  node: string
  config: string
  processes: Array<Omit<ProcessState, 'snapshot'>>
  members: MemberSummary[]
  policy?: { version: string; ids: string[]; loaded_at: string }
  certificates: Record<string, string>
  events: RecentEvent[]
}

export interface MemberSummary {
  name: string
  state: string
  sessions: number
  inUse: number
  lastError?: string
  counters: Record<string, number>
}

/** Renders the report as text lines for a terminal. */
export function formatReport(report: StatusReport, nowMs = Date.now()): string {
  const lines = [`gateway ${report.node} (${report.config})`, 'processes:']
  for (const p of report.processes) {
    const pid = p.pid === undefined ? 'pid unknown' : `pid ${p.pid}`
    const note = p.note === undefined ? '' : `  ${p.note}`
    lines.push(`  ${p.name.padEnd(15)} ${(p.up ? 'up' : 'down').padEnd(5)} ${pid}${note}`)
  }

  lines.push('hsm members:')
  if (report.members.length === 0) lines.push('  unknown (crypto backend not running)')
  for (const m of report.members) {
    const c = m.counters
    const error = m.lastError === undefined ? '' : `  last error: ${m.lastError}`
    lines.push(
      `  ${m.name.padEnd(15)} ${m.state.padEnd(8)} sessions ${m.sessions} (${m.inUse} in use)` +
        `  operations ${c.operations ?? 0}  faults ${c.faults ?? 0}` +
        `  failovers ${c.failovers ?? 0}  retries ${c.retries ?? 0}${error}`,
    )
  }

  const policy = report.policy
  lines.push(
    policy === undefined
      ? 'policies: unknown (authz not running)'
      : `policies: version ${policy.version}, loaded ${policy.loaded_at}, ` +
          `${policy.ids.length} policies: ${policy.ids.join(', ')}`,
  )

  lines.push('certificates:')
  for (const [role, expiry] of Object.entries(report.certificates)) {
    lines.push(`  ${role.padEnd(15)} ${describeExpiry(expiry, nowMs)}`)
  }

  lines.push('recent alerts and errors:')
  if (report.events.length === 0) lines.push('  none')
  for (const e of report.events) {
    const ids = Object.entries(e.ids)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    lines.push(`  ${e.time} ${e.level.padEnd(5)} ${e.component}: ${e.msg}${ids ? ` (${ids})` : ''}`)
  }
  return `${lines.join('\n')}\n`
}

function describeExpiry(expiry: string, nowMs: number): string {
  const at = Date.parse(expiry)
  if (Number.isNaN(at)) return expiry
  const hours = (at - nowMs) / 3_600_000
  if (hours < 0) return `EXPIRED at ${expiry}`
  const left = hours >= 48 ? `${Math.floor(hours / 24)} days` : `${hours.toFixed(1)} hours`
  return `expires ${expiry} (in ${left})`
}
