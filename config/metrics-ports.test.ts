import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from './load.js'

const example = readFileSync(
  join(import.meta.dirname, '..', 'deploy', 'hsmgate.example.yaml'),
  'utf8',
)
const dir = mkdtempSync(join(tmpdir(), 'hsmgate-ports-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function load(edit: (text: string) => string) {
  const file = join(dir, 'hsmgate.yaml')
  writeFileSync(file, edit(example))
  return () => loadConfig(file)
}

describe('metrics ports', () => {
  it('reject the listener port', () => {
    const attempt = load((t) => t.replace('authz_port: 9464', 'authz_port: 8443'))
    expect(attempt).toThrow(ConfigError)
    expect(attempt).toThrow(/metrics.authz_port: port 8443 is already used by listen.port/)
  })

  it('reject each other', () => {
    const attempt = load((t) => t.replace('backend_port: 9465', 'backend_port: 9464'))
    expect(attempt).toThrow(/metrics.backend_port: port 9464 is already used by metrics.authz_port/)
  })

  it('reject the stats port', () => {
    const attempt = load((t) => t.replace('authz_port: 9464', 'authz_port: 9901'))
    expect(attempt).toThrow(/already used by envoy.stats_port/)
  })
})
