import { readFileSync } from 'node:fs'
import { DEFAULT_RENEW_AT, RENEW_AT_RANGE } from '../../client/backoff.js'
import { AGENT_KEY_TYPES, type AgentKeyType } from '../../client/key-material.js'
import { durationMs } from '../../crypto-backend/pki/duration.js'
import { CliError, EXIT } from '../cli-error.js'

// Option parsing shared by 'hsmgate agent enroll' and 'hsmgate agent run'.

/** Reads a required file option; a missing file is a usage error with exit code 2. */
export function readOption(path: string | undefined, option: string): string {
  if (path === undefined) throw new CliError(`${option} FILE is required`, EXIT.usage)
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new CliError(`${option} ${path}: ${(error as Error).message}`, EXIT.usage)
  }
}

/**
 * Returns the enrollment token from the text of a --token-file: the bare token, or the JSON
 * object that 'hsmgate tokens create' prints, whose `token` field holds it.
 */
export function tokenFromFile(text: string, path: string): string {
  const trimmed = text.trim()
  if (!trimmed.startsWith('{')) {
    if (trimmed === '' || /\s/.test(trimmed)) {
      throw new CliError(
        `--token-file ${path} holds no token; save the output of 'hsmgate tokens create', or ` +
          'only its token value, in the file',
        EXIT.usage,
      )
    }
    return trimmed
  }
  let token: unknown
  try {
    token = (JSON.parse(trimmed) as { token?: unknown }).token
  } catch (error) {
    throw new CliError(
      `--token-file ${path} is not valid JSON: ${(error as Error).message}`,
      EXIT.usage,
    )
  }
  if (typeof token !== 'string' || token === '') {
    throw new CliError(
      `--token-file ${path} is JSON without a "token" string; save the output of 'hsmgate ` +
        "tokens create' unchanged",
      EXIT.usage,
    )
  }
  return token
}

export function keyTypeOption(value: string): AgentKeyType {
  if (!(AGENT_KEY_TYPES as readonly string[]).includes(value)) {
    throw new CliError(`--key-type ${value}; allowed: ${AGENT_KEY_TYPES.join(', ')}`, EXIT.usage)
  }
  return value as AgentKeyType
}

export function gatewayOption(value: string | undefined): string {
  if (value === undefined) throw new CliError('--gateway URL is required', EXIT.usage)
  if (!/^https:\/\/[^/]+\/?$/.test(value)) {
    throw new CliError(`--gateway ${value} must be an https:// base URL`, EXIT.usage)
  }
  return value
}

/** Parses --renew-at: a decimal fraction of the certificate lifetime within RENEW_AT_RANGE. */
export function renewAtOption(value: string | undefined): number {
  if (value === undefined) return DEFAULT_RENEW_AT
  const fraction = /^0?\.\d{1,3}$/.test(value) ? Number(value) : NaN
  const { min, max } = RENEW_AT_RANGE
  if (!(fraction >= min && fraction <= max)) {
    throw new CliError(
      `--renew-at ${value} is invalid; give a decimal fraction of the certificate lifetime ` +
        `from ${min} to ${max}, such as 0.67 (the default, two thirds)`,
      EXIT.usage,
    )
  }
  return fraction
}

/** Parses a retry duration option such as 500ms, 2s or 5m within `minMs` to `maxMs`. */
export function retryDurationOption(
  value: string,
  option: string,
  minMs: number,
  maxMs: number,
): number {
  let ms: number
  try {
    ms = durationMs(value)
  } catch {
    ms = NaN
  }
  if (!(ms >= minMs && ms <= maxMs)) {
    throw new CliError(
      `${option} ${value} is invalid; give a duration from ${minMs} ms to ${maxMs / 60_000} ` +
        'minutes, written as a number and ms, s or m, such as 2s',
      EXIT.usage,
    )
  }
  return ms
}
