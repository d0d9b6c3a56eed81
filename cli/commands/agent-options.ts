import { readFileSync } from 'node:fs'
import { AGENT_KEY_TYPES, type AgentKeyType } from '../../client/key-material.js'
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
