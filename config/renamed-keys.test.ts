import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from './load.js'
import { renamedKeys, renamedKeyWarnings } from './renamed-keys.js'

const example = readFileSync(
  join(import.meta.dirname, '..', 'deploy', 'hsmgate.example.yaml'),
  'utf8',
)
const dir = mkdtempSync(join(tmpdir(), 'hsmgate-renamed-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function load(edit: (text: string) => string) {
  const file = join(dir, 'hsmgate.yaml')
  writeFileSync(file, edit(example))
  return loadConfig(file)
}

describe('envoy.admin_port', () => {
  it('loads as the stats port of an old config', () => {
    const config = load((t) => t.replace('  stats_port: 9901', '  admin_port: 9911'))
    expect(config.envoy.stats_port).toBe(9911)
    expect(renamedKeys(config).map((r) => r.key)).toEqual(['envoy.admin_port'])
    const [warning] = renamedKeyWarnings(config)
    expect(warning).toContain('envoy-admin.sock')
    expect(warning).toContain('rename envoy.admin_port to envoy.stats_port')
  })

  it('rejects both names at once', () => {
    const attempt = () =>
      load((t) => t.replace('  stats_port: 9901', '  stats_port: 9901\n  admin_port: 9911'))
    expect(attempt).toThrow(ConfigError)
    expect(attempt).toThrow(/envoy.admin_port: earlier name of envoy.stats_port, which is also set/)
  })

  it('names the old key when its port clashes', () => {
    const attempt = () => load((t) => t.replace('  stats_port: 9901', '  admin_port: 8443'))
    expect(attempt).toThrow(/envoy.admin_port: port 8443 is already used by listen.port/)
  })

  it('is absent from a current config', () => {
    const config = load((t) => t)
    expect(config.envoy.stats_port).toBe(9901)
    expect(renamedKeys(config)).toEqual([])
  })

  it('leaves no stats port when neither name is set', () => {
    const config = load((t) => t.replace('  stats_port: 9901\n', ''))
    expect(config.envoy.stats_port).toBeUndefined()
  })
})
