import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { effectiveLevel } from './logger.js'
import { RecentEvents } from './recent-events.js'
import { ROOT } from '../test/helpers/gateway-process.js'

describe('log level', () => {
  afterEach(() => {
    delete process.env.HSMGATE_LOG_LEVEL
  })

  it('takes HSMGATE_LOG_LEVEL over the config', () => {
    process.env.HSMGATE_LOG_LEVEL = 'debug'
    expect(effectiveLevel('info')).toBe('debug')
  })

  it('keeps the configured level without the variable', () => {
    expect(effectiveLevel('warn')).toBe('warn')
  })

  it('rejects an unknown level by name', () => {
    process.env.HSMGATE_LOG_LEVEL = 'verbose'
    expect(() => effectiveLevel('info')).toThrow(/HSMGATE_LOG_LEVEL is 'verbose'/)
  })
})

describe('recent events', () => {
  it('keeps the newest warnings with their ids', () => {
    const events = new RecentEvents(2)
    const line = (msg: string, level: number) =>
      JSON.stringify({ level, time: 1, component: 'hsm', msg, member: 'a', body: 'secret' })
    events.write(line('one', 40))
    events.write(line('two', 50))
    events.write(line('three', 60))
    events.write('not json')
    expect(events.list().map((e) => e.msg)).toEqual(['two', 'three'])
    expect(events.list()[0]?.ids).toEqual({ member: 'a' })
    expect(JSON.stringify(events.list())).not.toContain('secret')
  })
})

describe('redaction', () => {
  it('hides secret fields at two levels', () => {
    // The logger writes to fd 2, so a child process runs the built logger and stderr is read.
    const logger = join(ROOT, 'dist', 'log', 'logger.js')
    const code = [
      `const { createLogger } = await import(${JSON.stringify(logger)})`,
      "const log = createLogger('test', 'info')",
      "log.info({ pin: 'pin-1111', request: { token: 'tok-2222', plaintext: 'pt-3333' } }, 'x')",
      "log.warn({ authorization: 'auth-4444', private_key: 'key-5555' }, 'y')",
    ].join('\n')
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      encoding: 'utf8',
      env: { ...process.env, HSMGATE_LOG_LEVEL: '' },
    })
    expect(result.status, result.stderr).toBe(0)
    expect(result.stderr).toContain('[redacted]')
    for (const secret of ['pin-1111', 'tok-2222', 'pt-3333', 'auth-4444', 'key-5555']) {
      expect(result.stderr).not.toContain(secret)
    }
  })
})

describe('component logger', () => {
  it('writes component once and the part as subsystem', () => {
    const logger = join(ROOT, 'dist', 'log', 'logger.js')
    const code = [
      `const { componentLogger, createLogger } = await import(${JSON.stringify(logger)})`,
      "componentLogger(createLogger('authz', 'info'), 'alerts').error({ alert: 'x' }, 'alert')",
    ].join('\n')
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      encoding: 'utf8',
      env: { ...process.env, HSMGATE_LOG_LEVEL: '' },
    })
    expect(result.status, result.stderr).toBe(0)
    const line = result.stderr.trim()
    expect(line.match(/"component":/g)).toHaveLength(1)
    expect(JSON.parse(line)).toMatchObject({ component: 'authz', subsystem: 'alerts' })
  })
})
