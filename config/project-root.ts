import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Returns the project's root directory (the one holding package.json), found by walking up from
 * this module, so that the same code works from the sources and from dist/.
 */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let depth = 0; depth < 6; depth++) {
    if (existsSync(join(dir, 'package.json'))) return dir
    dir = dirname(dir)
  }
  throw new Error(`package.json not found above ${fileURLToPath(import.meta.url)}`)
}
