import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RepeatLimiter, limitRepeats } from './repeat-limiter.js'

type Line = Record<string, unknown>

function capture(): { logger: pino.Logger; lines: () => Line[] } {
  const out: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.push(chunk.toString())
      done()
    },
  })
  return {
    logger: pino({ level: 'trace' }, stream),
    lines: () => out.map((line) => JSON.parse(line) as Line),
  }
}

describe('repeat limiter', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('turns a burst into one line and a summary', () => {
    const { logger, lines } = capture()
    const limiter = new RepeatLimiter(logger, 1_000)
    for (let i = 0; i < 50; i++) {
      limiter.error('member-a', { member: 'a', decision_id: `d_${i}` }, 'call failed')
    }
    expect(lines()).toHaveLength(1)
    expect(lines()[0]?.decision_id).toBe('d_0')
    expect(lines()[0]?.repeated).toBeUndefined()

    vi.advanceTimersByTime(1_000)
    expect(lines()).toHaveLength(2)
    const summary = lines()[1]
    expect(summary?.repeated).toBe(49)
    expect(summary?.window_ms).toBe(1_000)
    expect(summary?.member).toBe('a')
    expect(summary?.decision_id).toBe('d_49')
    expect(summary?.level).toBe(50)
    expect(summary?.msg).toBe('call failed (repeated 49 times in 1 s)')
  })

  it('limits each key on its own', () => {
    const { logger, lines } = capture()
    const limiter = new RepeatLimiter(logger, 1_000)
    limiter.warn('member-a', { member: 'a' }, 'call failed')
    limiter.warn('member-b', { member: 'b' }, 'call failed')
    limiter.warn('member-a', { member: 'a' }, 'call failed')
    expect(lines().map((l) => l.member)).toEqual(['a', 'b'])

    vi.advanceTimersByTime(1_000)
    // Only member-a repeated, so only it gets a summary.
    expect(lines().map((l) => [l.member, l.repeated])).toEqual([
      ['a', undefined],
      ['b', undefined],
      ['a', 1],
    ])
    expect(lines()[2]?.level).toBe(40)
  })

  it('logs in full again after the window', () => {
    const { logger, lines } = capture()
    const limiter = new RepeatLimiter(logger, 1_000)
    limiter.error('k', { member: 'a' }, 'call failed')
    vi.advanceTimersByTime(1_500)
    limiter.error('k', { member: 'a' }, 'call failed')
    expect(lines()).toHaveLength(2)
    expect(lines()[1]?.repeated).toBeUndefined()
  })

  it('flush writes pending summaries', () => {
    const { logger, lines } = capture()
    const limiter = new RepeatLimiter(logger, 60_000)
    limiter.error('k', {}, 'write failed')
    limiter.error('k', {}, 'write failed')
    limiter.flush()
    expect(lines().map((l) => l.repeated)).toEqual([undefined, 1])
    vi.advanceTimersByTime(60_000)
    expect(lines()).toHaveLength(2)
  })
})

describe('limitRepeats', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('limits errors by message and code', () => {
    const { logger, lines } = capture()
    const limited = limitRepeats(logger, 10_000)
    const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
    for (let i = 0; i < 30; i++) limited.error({ err: denied }, 'renewing TLS material failed')
    limited.error({ err: new Error('other') }, 'renewing TLS material failed')
    limited.info('serving certificate issued')
    limited.info('serving certificate issued')
    expect(lines().map((l) => l.msg)).toEqual([
      'renewing TLS material failed',
      'renewing TLS material failed',
      'serving certificate issued',
      'serving certificate issued',
    ])

    vi.advanceTimersByTime(10_000)
    const summary = lines().at(-1)
    expect(summary?.repeated).toBe(29)
    expect((summary?.err as { code?: string } | undefined)?.code).toBe('EACCES')
  })
})
