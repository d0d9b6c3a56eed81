import { describe, expect, it } from 'vitest'
import { CliError, EXIT } from '../cli-error.js'
import { renewAtOption, retryDurationOption, tokenFromFile } from './agent-options.js'

function usageError(run: () => unknown): CliError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(CliError)
    expect((error as CliError).exitCode).toBe(EXIT.usage)
    return error as CliError
  }
  throw new Error('expected a usage error')
}

describe('agent run options', () => {
  it('--renew-at accepts fractions from 0.1 to 0.9', () => {
    expect(renewAtOption(undefined)).toBeCloseTo(2 / 3)
    expect(renewAtOption('0.25')).toBe(0.25)
    expect(renewAtOption('.9')).toBe(0.9)
    expect(renewAtOption('0.1')).toBe(0.1)
  })

  it('--renew-at rejects values outside the range', () => {
    for (const value of ['0', '0.05', '0.95', '1', '2', '-0.5', 'abc', '1e-1', '0.5.1', '']) {
      expect(usageError(() => renewAtOption(value)).message, value).toContain(`--renew-at ${value}`)
    }
  })

  it('retry durations need a unit and a range', () => {
    expect(retryDurationOption('500ms', '--retry-initial', 100, 600_000)).toBe(500)
    expect(retryDurationOption('2m', '--retry-max', 1_000, 3_600_000)).toBe(120_000)
    for (const value of ['50ms', '2', '2h', 'soon', '-1s']) {
      const error = usageError(() => retryDurationOption(value, '--retry-max', 100, 3_600_000))
      expect(error.message, value).toContain(`--retry-max ${value} is invalid`)
    }
  })
})

describe('agent enroll --token-file', () => {
  const token = 'hsmgate_et_abc-DEF_123'

  it('accepts the JSON that tokens create prints', () => {
    const printed = JSON.stringify({ token, app: 'payments', host: 'app1' }, null, 2) + '\n'
    expect(tokenFromFile(printed, 'token.json')).toBe(token)
  })

  it('accepts the bare token with a newline', () => {
    expect(tokenFromFile(`${token}\n`, 'token')).toBe(token)
  })

  it('rejects JSON without a token field', () => {
    expect(usageError(() => tokenFromFile('{"app":"payments"}', 'f')).message).toMatch(
      /--token-file f is JSON without a "token" string/,
    )
  })

  it('rejects broken JSON and an empty file', () => {
    expect(usageError(() => tokenFromFile('{"token":', 'f')).message).toMatch(/not valid JSON/)
    expect(usageError(() => tokenFromFile('\n', 'f')).message).toMatch(/holds no token/)
  })
})
