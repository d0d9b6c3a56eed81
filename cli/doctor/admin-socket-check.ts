import { statSync } from 'node:fs'
import { socketPaths, type LoadedConfig } from '../../config/load.js'
import { renamedKeys } from '../../config/renamed-keys.js'
import { fail, ok, warn, type CheckResult } from './check-result.js'

/**
 * Checks that Envoy's admin socket, when it exists, is a socket that only its owner may connect
 * to. Anyone who can connect can drain the listeners, stop Envoy or read its certificates.
 */
export function checkAdminSocket(config: LoadedConfig): CheckResult {
  const name = 'envoy admin socket'
  const path = socketPaths(config).envoyAdmin
  let stats
  try {
    stats = statSync(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return ok(name, `${path} does not exist (Envoy is not running)`)
    return warn(
      name,
      `cannot inspect ${path} (${code ?? (error as Error).message})`,
      'run hsmgate doctor as root or as a member of the runtime directory group',
    )
  }
  const mode = (stats.mode & 0o777).toString(8).padStart(4, '0')
  if (!stats.isSocket()) {
    return fail(name, `${path} is not a socket`, 'remove it; Envoy creates the socket at start')
  }
  if ((stats.mode & 0o077) !== 0) {
    return fail(
      name,
      `${path} has mode ${mode}; other users can change Envoy's state through it`,
      `restart Envoy with the bootstrap of this hsmgate, which creates the socket with mode 0600`,
    )
  }
  return ok(name, `${path} has mode ${mode}, owner uid ${stats.uid}`)
}

/** Returns a warning for each configuration key that still loads but changed its meaning. */
export function checkRenamedKeys(config: LoadedConfig): CheckResult[] {
  return renamedKeys(config).map((renamed) =>
    warn(`config ${renamed.key}`, renamed.detail, renamed.fix),
  )
}
