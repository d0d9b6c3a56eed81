/** Throughput and latency of one benchmark phase. */
export interface PhaseResult {
  ops: number
  seconds: number
  ops_per_s: number
  p50_ms: number
  p99_ms: number
  errors: number
}

/** Returns the `q` quantile (0..1) of sorted values. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  const index = Math.min(sorted.length - 1, Math.floor(q * sorted.length))
  return sorted[index] ?? 0
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits

/** Summarizes per-operation latencies (ms) collected over `seconds`. */
export function summarize(latencies: number[], seconds: number, errors: number): PhaseResult {
  const sorted = [...latencies].sort((a, b) => a - b)
  return {
    ops: sorted.length,
    seconds: round(seconds, 2),
    ops_per_s: Math.round(sorted.length / seconds),
    p50_ms: round(quantile(sorted, 0.5), 3),
    p99_ms: round(quantile(sorted, 0.99), 3),
    errors,
  }
}
