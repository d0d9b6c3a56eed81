import { Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The metrics registry of this process. Each gateway process (authz, crypto backend) has its
 * own, served on its own scrape port; families that a process never touches have no samples.
 */
export const metricsRegistry = new Registry()

let defaultsCollected = false

/**
 * Adds Node's process metrics (CPU, memory, event-loop lag, open handles) with the `hsmgate_`
 * prefix. Called once by a process entry point; further calls do nothing.
 */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return
  defaultsCollected = true
  collectDefaultMetrics({ register: metricsRegistry, prefix: 'hsmgate_' })
}

/** Label value used when the real value is not bounded, such as a key name that was not found. */
export const UNKNOWN_LABEL = '-'

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]
