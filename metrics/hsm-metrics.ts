import { Counter, Gauge } from 'prom-client'
import type { MemberCounters, MemberStatus } from '../crypto-backend/hsm/cluster-member.js'
import { metricsRegistry } from './registry.js'

/** Source of per-member status, read at each scrape. */
export interface MemberStatusSource {
  status(): MemberStatus[]
}

let source: MemberStatusSource | undefined

/** Makes the metrics below report this cluster; the last call wins. */
export function watchHsmCluster(cluster: MemberStatusSource): void {
  source = cluster
}

const members = (): MemberStatus[] => source?.status() ?? []

new Gauge({
  name: 'hsmgate_hsm_member_healthy',
  help: 'Health of each HSM cluster member: 1 healthy, 0 failed.',
  labelNames: ['member'] as const,
  registers: [metricsRegistry],
  collect() {
    this.reset()
    for (const m of members()) this.set({ member: m.name }, m.state === 'healthy' ? 1 : 0)
  },
})

new Gauge({
  name: 'hsmgate_hsm_sessions',
  help: 'Sessions of each member pool, by use (open, in_use).',
  labelNames: ['member', 'use'] as const,
  registers: [metricsRegistry],
  collect() {
    this.reset()
    for (const m of members()) {
      this.set({ member: m.name, use: 'open' }, m.sessions)
      this.set({ member: m.name, use: 'in_use' }, m.inUse)
    }
  },
})

/** Member counters exposed as Prometheus counters, with their help texts. */
const COUNTERS: Record<keyof MemberCounters, string> = {
  operations: 'Calls run on each HSM member (operations, health checks, key management).',
  errors: 'Calls on each HSM member that failed for any reason.',
  faults: 'Calls that failed because of the member (device, session, login or timeout).',
  timeouts: 'Calls on each HSM member that exceeded operation_timeout_ms.',
  retries: 'Operations that reached each member as the retry of another member fault.',
  failovers: 'Transitions of each member from healthy to failed.',
  recoveries: 'Transitions of each member from failed back to healthy.',
}

for (const [field, help] of Object.entries(COUNTERS) as Array<[keyof MemberCounters, string]>) {
  new Counter({
    name: `hsmgate_hsm_${field}_total`,
    help,
    labelNames: ['member'] as const,
    registers: [metricsRegistry],
    collect() {
      // The member keeps the running totals; each scrape copies them.
      this.reset()
      for (const m of members()) this.inc({ member: m.name }, m.counters[field])
    },
  })
}
