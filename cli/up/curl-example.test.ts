import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../../config/load.js'
import { readyHint } from './curl-example.js'

const dirs: string[] = []

/**
 * Returns the part of a loaded configuration that readyHint reads, for a new setup directory.
 * NOTE: the other fields of LoadedConfig are absent; readyHint reads only dir and listen.
 */
function setup(): LoadedConfig {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-hint-'))
  dirs.push(dir)
  return { dir, listen: { address: '0.0.0.0', port: 8443 } } as unknown as LoadedConfig
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('readyHint', () => {
  it('prints the demo sign command when the demo files exist', () => {
    const config = setup()
    const app = join(config.dir, 'apps', 'payments')
    mkdirSync(app, { recursive: true })
    for (const name of ['ca.crt', 'client.crt', 'client.key']) writeFileSync(join(app, name), '')

    const hint = readyHint(config)
    expect(hint).toMatch(/^try:\n {2}curl /)
    expect(hint).toContain(`--cert ${app}/client.crt`)
    expect(hint).toContain('https://127.0.0.1:8443/v1/keys/payments-signing/sign')
  })

  it('points to enrollment without demo applications', () => {
    const hint = readyHint(setup())
    expect(hint).not.toContain('curl')
    expect(hint).toContain('hsmgate tokens create')
    expect(hint).toContain('hsmgate agent enroll')
  })

  it('points to enrollment when the demo key file is missing', () => {
    const config = setup()
    const app = join(config.dir, 'apps', 'payments')
    mkdirSync(app, { recursive: true })
    for (const name of ['ca.crt', 'client.crt']) writeFileSync(join(app, name), '')

    expect(readyHint(config)).not.toContain('curl')
  })
})
