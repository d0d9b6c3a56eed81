const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Converts a duration such as `24h` or `90s`, as the config schema accepts it, to milliseconds. */
export function durationMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text)
  if (match === null) {
    throw new RangeError(`'${text}' is not a duration; write a number and ms, s, m, h or d`)
  }
  return Number(match[1]) * (UNIT_MS[match[2]!] ?? 0)
}
