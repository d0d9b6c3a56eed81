import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'

/** Mode of the agent's directory and files: only the application's user may read them. */
export const PRIVATE_DIR_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600

/**
 * Creates `dir` with mode 0700 when missing and rejects one that group or other users can
 * enter, because it contains a private key.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
  const mode = statSync(dir).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `${dir} has mode ${mode.toString(8)}, so other users can reach the key in it; ` +
        `run 'chmod 700 ${dir}'`,
    )
  }
}

/**
 * Writes `data` to `path` so that a reader sees the old or the new file, never a partial one.
 * The data goes to a temporary file in the same directory with mode 0600, which is fsynced and
 * renamed over `path`. The directory is fsynced last, so the rename survives a crash.
 */
export function writeFileAtomic(path: string, data: string): void {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  const fd = openSync(temp, 'wx', PRIVATE_FILE_MODE)
  try {
    writeSync(fd, data)
    fsyncSync(fd)
  } catch (error) {
    closeSync(fd)
    rmSync(temp, { force: true })
    throw error
  }
  closeSync(fd)
  try {
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
  const dirFd = openSync(dirname(path), 'r')
  try {
    fsyncSync(dirFd)
  } finally {
    closeSync(dirFd)
  }
}
