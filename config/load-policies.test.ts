import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { gatewayConfig } from '../cli/init/demo-files.js'
import { ConfigError, loadConfig, policyDir } from './load.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmgate-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function writeConfig(edit: (authz: Record<string, unknown>) => void): string {
  const config = parse(
    gatewayConfig({
      listenAddress: '127.0.0.1',
      listenPort: 8443,
      statsPort: 9901,
      members: [{ name: 'hsm-a', label: 'hsmgate-a' }],
      caKeyId: 'ab',
    }),
  ) as { authz: Record<string, unknown> }
  edit(config.authz)
  const file = join(dir, 'hsmgate.yaml')
  writeFileSync(file, stringify(config))
  return file
}

describe('authz.policies', () => {
  it('resolves the policy directory against the file', () => {
    const config = loadConfig(writeConfig(() => undefined))
    expect(policyDir(config)).toBe(join(dir, 'policies'))
  })

  it('defaults to policies next to hsmgate.yaml', () => {
    const config = loadConfig(writeConfig((authz) => delete authz.policies))
    expect(policyDir(config)).toBe(join(dir, 'policies'))
  })

  it('rejects the old rules file with a migration hint', () => {
    const file = writeConfig((authz) => (authz.rules = 'rules.yaml'))
    expect(() => loadConfig(file)).toThrow(ConfigError)
    expect(() => loadConfig(file)).toThrow(/authz\.rules: the YAML rules engine is replaced/)
  })
})

describe('ports', () => {
  it('rejects the same port for two listeners', () => {
    const config = parse(
      gatewayConfig({
        listenAddress: '127.0.0.1',
        listenPort: 8443,
        statsPort: 8443,
        members: [{ name: 'hsm-a', label: 'hsmgate-a' }],
        caKeyId: 'ab',
      }),
    ) as Record<string, unknown>
    const file = join(dir, 'ports.yaml')
    writeFileSync(file, stringify(config))
    expect(() => loadConfig(file)).toThrow(ConfigError)
    expect(() => loadConfig(file)).toThrow(
      /envoy.stats_port: port 8443 is already used by listen.port/,
    )
  })
})
