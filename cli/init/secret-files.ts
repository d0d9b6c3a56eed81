import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/** Writes a file that only its owner may read (0600), creating its directory as 0700. */
export function writePrivateFile(path: string, content: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' })
}

/** Writes a file that others may read (0644), such as a certificate. */
export function writePublicFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
  writeFileSync(path, content, { mode: 0o644, flag: 'wx' })
}
