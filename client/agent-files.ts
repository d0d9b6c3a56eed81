import { X509Certificate } from 'node:crypto'
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { ensurePrivateDir, writeFileAtomic } from './atomic-files.js'

/** Returns the paths of the agent's key and certificate in `dir`. */
export function agentPaths(dir: string): { key: string; cert: string } {
  return { key: join(dir, 'client.key'), cert: join(dir, 'client.crt') }
}

/** The agent's current key and certificate chain as read from its directory. */
export interface AgentCredentials {
  readonly keyPem: string
  readonly chainPem: string
  readonly leaf: X509Certificate
}

/** Staged copies that writeCredentials renames into place once both are durable. */
function stagedPaths(dir: string): { key: string; cert: string } {
  const paths = agentPaths(dir)
  return { key: `${paths.key}.next`, cert: `${paths.cert}.next` }
}

/**
 * Finishes a write that a crash interrupted. The staged certificate is written only after the
 * staged key is durable, so when it exists the new pair is complete: the key (unless already
 * renamed) and the certificate are renamed into place. A lone staged key belongs to a write that
 * never finished and stays unused until the next write replaces it.
 */
function completePendingWrite(dir: string): void {
  const paths = agentPaths(dir)
  const staged = stagedPaths(dir)
  if (!existsSync(staged.cert)) return
  if (existsSync(staged.key)) renameSync(staged.key, paths.key)
  renameSync(staged.cert, paths.cert)
}

/** Reads the key and certificate; throws an error that names the missing or broken file. */
export function readCredentials(dir: string): AgentCredentials {
  completePendingWrite(dir)
  const paths = agentPaths(dir)
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8')
    } catch (error) {
      throw new Error(
        `cannot read ${path}: ${(error as Error).message}; run 'hsmgate agent enroll'`,
      )
    }
  }
  const keyPem = read(paths.key)
  const chainPem = read(paths.cert)
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(chainPem)
  } catch (error) {
    throw new Error(`${paths.cert} contains no valid certificate: ${(error as Error).message}`)
  }
  return { keyPem, chainPem, leaf }
}

/**
 * Replaces the key and certificate. Both are first written to staged files (temp file, fsync,
 * rename), then renamed into place, key first. A crash between the two final renames is
 * repaired by the next readCredentials, which renames the remaining staged certificate too, so
 * the pair never stays mismatched.
 */
export function writeCredentials(dir: string, keyPem: string, chainPem: string): void {
  ensurePrivateDir(dir)
  const paths = agentPaths(dir)
  const staged = stagedPaths(dir)
  writeFileAtomic(staged.key, keyPem)
  writeFileAtomic(staged.cert, chainPem)
  renameSync(staged.key, paths.key)
  renameSync(staged.cert, paths.cert)
}
