import { isIP } from 'node:net'
import type { Application } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'

/**
 * Application names: lowercase letters, digits and hyphens, 1 to 48 characters, starting and
 * ending with a letter or digit. The name becomes a SPIFFE path segment and the prefix of the
 * application's key names, which are at most 64 characters.
 */
export const APP_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$/
const TEAM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** A lowercase DNS name of at most 253 characters, each label 1 to 63 characters. */
export const HOST_PATTERN =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

export interface ApplicationOptions {
  name: string
  team?: string
  host?: string
  address?: string
}

/** Splits a comma-separated option; an empty element is a usage error naming the option. */
function listOption(option: string, text: string | undefined): string[] {
  if (text === undefined) throw new CliError(`apps create needs ${option}`, EXIT.usage)
  const parts = text.split(',').map((part) => part.trim())
  if (parts.some((part) => part === '')) {
    throw new CliError(
      `${option} '${text}' has an empty element; separate values by commas`,
      EXIT.usage,
    )
  }
  return [...new Set(parts)]
}

/**
 * Checks the options of `apps create` and returns the application to store, not suspended.
 * Throws CliError with exit code 2 naming the first invalid value.
 */
export function parseApplication(options: ApplicationOptions, createdAt: string): Application {
  if (!APP_NAME_PATTERN.test(options.name)) {
    throw new CliError(
      `application name '${options.name}' is invalid; use 1 to 48 lowercase letters, digits ` +
        'and hyphens, starting and ending with a letter or digit',
      EXIT.usage,
    )
  }
  if (options.team === undefined) throw new CliError('apps create needs --team TEAM', EXIT.usage)
  if (!TEAM_PATTERN.test(options.team)) {
    throw new CliError(
      `--team '${options.team}' is invalid; use 1 to 64 letters, digits, dots, underscores ` +
        'and hyphens, starting with a letter or digit',
      EXIT.usage,
    )
  }
  const hosts = listOption('--host HOST[,HOST...]', options.host)
  const badHost = hosts.find((host) => !HOST_PATTERN.test(host))
  if (badHost !== undefined) {
    throw new CliError(`--host '${badHost}' is not a lowercase DNS name`, EXIT.usage)
  }
  const addresses = listOption('--address IP[,IP...]', options.address).map((a) => a.toLowerCase())
  const badAddress = addresses.find((address) => isIP(address) === 0)
  if (badAddress !== undefined) {
    throw new CliError(`--address '${badAddress}' is not an IPv4 or IPv6 address`, EXIT.usage)
  }
  return { name: options.name, team: options.team, hosts, addresses, suspended: false, createdAt }
}
