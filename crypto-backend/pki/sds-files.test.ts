import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { prepareSdsDirectory, sdsPaths, validationSecret, writeSdsFile } from './sds-files.js'

let runtimeDir: string
// A group this process may give files to: any group for root, its own group otherwise.
const groupId = process.getuid?.() === 0 ? 61_000 : (process.getgid?.() ?? 0)
const secret = validationSecret('bundle', 'crl')
const modeOf = (path: string): number => statSync(path).mode & 0o7777

beforeEach(() => {
  runtimeDir = mkdtempSync(join(tmpdir(), 'hsmgate-sds-'))
})
afterEach(() => rmSync(runtimeDir, { recursive: true, force: true }))

describe('sds file access', () => {
  it('stays owner-only without socket_group', () => {
    prepareSdsDirectory(runtimeDir, undefined)
    const paths = sdsPaths(runtimeDir)
    writeSdsFile(paths.serving, secret)
    expect(modeOf(paths.dir)).toBe(0o700)
    expect(modeOf(paths.serving)).toBe(0o600)
  })

  it('opens to the socket group for reading', () => {
    prepareSdsDirectory(runtimeDir, groupId)
    const paths = sdsPaths(runtimeDir)
    writeSdsFile(paths.serving, secret)
    writeSdsFile(paths.validation, secret)
    expect(modeOf(paths.dir)).toBe(0o750)
    expect(statSync(paths.dir).gid).toBe(groupId)
    for (const file of [paths.serving, paths.validation]) {
      expect(modeOf(file), file).toBe(0o640)
      expect(statSync(file).gid, file).toBe(groupId)
    }
  })

  it('closes again when socket_group is removed', () => {
    prepareSdsDirectory(runtimeDir, groupId)
    const paths = sdsPaths(runtimeDir)
    writeSdsFile(paths.serving, secret)
    prepareSdsDirectory(runtimeDir, undefined)
    writeSdsFile(paths.serving, secret)
    expect(modeOf(paths.dir)).toBe(0o700)
    expect(modeOf(paths.serving)).toBe(0o600)
  })

  it('keeps group write off under a lax umask', () => {
    const previous = process.umask(0)
    try {
      prepareSdsDirectory(runtimeDir, groupId)
      writeSdsFile(sdsPaths(runtimeDir).serving, secret)
    } finally {
      process.umask(previous)
    }
    expect(modeOf(sdsPaths(runtimeDir).serving)).toBe(0o640)
  })
})
