import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import type { z } from 'zod'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../config/load.js'
import { configSchema } from '../../config/schema.js'
import { ROOT } from '../helpers/gateway-process.js'

const run = promisify(execFile)
const SYSTEMD = join(ROOT, 'deploy', 'systemd')
const SERVICES = ['hsmgate-authz.service', 'hsmgate-backend.service', 'hsmgate-envoy.service']
const temporary: string[] = []

afterAll(() => temporary.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

/**
 * Copies the units to a temporary directory for `systemd-analyze verify`. The units start
 * /usr/bin/node; when the node running this test lives elsewhere, the copy points there, so
 * that verify finds an executable. Nothing else is rewritten.
 */
function unitCopy(edit: (name: string, text: string) => string = (_n, t) => t): string {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-units-'))
  temporary.push(dir)
  for (const name of readdirSync(SYSTEMD).filter((f) => /\.(service|target)$/.test(f))) {
    const text = readFileSync(join(SYSTEMD, name), 'utf8').replaceAll(
      '/usr/bin/node',
      process.execPath,
    )
    writeFileSync(join(dir, name), edit(name, text))
  }
  return dir
}

async function verify(dir: string): Promise<{ code: number; output: string }> {
  const units = [...SERVICES, 'hsmgate.target'].map((u) => join(dir, u))
  try {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', ...units])
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, output: e.stdout + e.stderr }
  }
}

/** Returns the values of one directive in a unit file, in order. */
function directive(unit: string, name: string): string[] {
  const text = readFileSync(join(SYSTEMD, unit), 'utf8')
  return [...text.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1] ?? '')
}

describe('systemd units', () => {
  it('pass systemd-analyze verify', async () => {
    const result = await verify(unitCopy())
    expect(result.output).toBe('')
    expect(result.code).toBe(0)
  })

  it('verify rejects a broken unit', async () => {
    // Shows that the check above can fail: a missing executable is an error for verify.
    const dir = unitCopy((name, text) =>
      name === 'hsmgate-authz.service' ? text.replace(process.execPath, '/nonexistent/node') : text,
    )
    const result = await verify(dir)
    expect(result.code).not.toBe(0)
    expect(result.output).toContain('/nonexistent/node')
  })

  it('each service is hardened', () => {
    for (const unit of SERVICES) {
      expect(directive(unit, 'NoNewPrivileges'), unit).toEqual(['yes'])
      expect(directive(unit, 'ProtectSystem'), unit).toEqual(['strict'])
      expect(directive(unit, 'PrivateTmp'), unit).toEqual(['yes'])
      expect(directive(unit, 'CapabilityBoundingSet'), unit).toEqual([''])
      expect(directive(unit, 'AmbientCapabilities'), unit).toEqual([''])
      expect(directive(unit, 'RestrictAddressFamilies')[0], unit).toMatch(/^AF_UNIX( AF_INET6?)*$/)
      expect(directive(unit, 'ReadWritePaths').length, unit).toBe(1)
      expect(directive(unit, 'ExecStart')[0], unit).toMatch(/main\.js run (authz|backend|envoy) /)
    }
  })

  it('each service runs as its own user', () => {
    const users = SERVICES.map((unit) => directive(unit, 'User')[0])
    expect(new Set(users).size).toBe(3)
    expect(users).not.toContain('root')
  })

  it('keep Envoy out of the store group', () => {
    const tmpfiles = readFileSync(join(SYSTEMD, 'hsmgate-tmpfiles.conf'), 'utf8')
    const groupOf = (path: string): string | undefined =>
      new RegExp(`^d ${path} \\S+ \\S+ (\\S+)`, 'm').exec(tmpfiles)?.[1]
    const envoyGroups = [
      ...directive('hsmgate-envoy.service', 'Group'),
      ...directive('hsmgate-envoy.service', 'SupplementaryGroups').flatMap((g) => g.split(' ')),
    ]
    expect(envoyGroups).not.toContain(groupOf('/var/lib/hsmgate/store'))
    expect(envoyGroups).not.toContain(groupOf('/var/lib/hsmgate/pki'))
    // The runtime directory belongs to the socket group, which all three units share.
    const socketGroup = loadConfig(join(ROOT, 'deploy', 'hsmgate.example.yaml')).socket_group
    expect(groupOf('/run/hsmgate')).toBe(socketGroup)
    for (const unit of ['hsmgate-authz.service', 'hsmgate-backend.service']) {
      expect(directive(unit, 'SupplementaryGroups'), unit).toContain(socketGroup)
    }
  })

  it('only the backend receives PIN files', () => {
    expect(directive('hsmgate-backend.service', 'LoadCredential').join(' ')).toContain('.pin:')
    for (const unit of ['hsmgate-authz.service', 'hsmgate-envoy.service']) {
      expect(directive(unit, 'LoadCredential').join(' '), unit).not.toContain('.pin')
      expect(readFileSync(join(SYSTEMD, unit), 'utf8'), unit).not.toContain(
        '/etc/hsmgate/secrets/hsm',
      )
    }
  })
})

describe('compose file', () => {
  // Compose files use YAML merge keys (<<:), which the yaml package applies only when asked.
  const text = readFileSync(join(ROOT, 'deploy', 'compose.yaml'), 'utf8')
  const compose = parse(text, { merge: true }) as {
    services: Record<string, Record<string, unknown>>
    volumes: Record<string, unknown>
    secrets: Record<string, { file: string }>
  }
  const services = compose.services

  it('defines the three processes with a command and image', () => {
    expect(Object.keys(services).sort()).toEqual(['authz', 'backend', 'envoy'])
    for (const [name, service] of Object.entries(services)) {
      expect(service.image, name).toMatch(/hsmgate/)
      expect(service.command, name).toEqual(expect.arrayContaining(['run', name]))
      expect(service.cap_drop, name).toEqual(['ALL'])
      expect(service.read_only, name).toBe(true)
      expect(service.privileged, name).toBeUndefined()
    }
  })

  it('references only declared volumes and secrets', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of (service.volumes as string[] | undefined) ?? []) {
        const source = volume.split(':')[0] ?? ''
        if (!source.startsWith('.'))
          expect(compose.volumes, `${name}: ${volume}`).toHaveProperty(source)
      }
      for (const secret of (service.secrets as Array<{ source: string }> | undefined) ?? []) {
        expect(compose.secrets, name).toHaveProperty(secret.source)
      }
    }
  })

  it('gives PIN secrets to the backend only', () => {
    for (const [name, service] of Object.entries(services)) {
      const sources = ((service.secrets as Array<{ source: string }> | undefined) ?? []).map(
        (s) => s.source,
      )
      const pins = sources.filter((s) => s.includes('pin'))
      expect(pins.length > 0, name).toBe(name === 'backend')
    }
  })

  it('has no dependency cycle', () => {
    // network_mode service:X makes a service depend on X, as depends_on does.
    const edges = (name: string): string[] => {
      const service = services[name] ?? {}
      const deps = (service.depends_on as string[] | undefined) ?? []
      const mode = String(service.network_mode ?? '')
      return mode.startsWith('service:') ? [...deps, mode.slice('service:'.length)] : deps
    }
    const visit = (name: string, path: string[]): void => {
      expect(path, `cycle through ${name}`).not.toContain(name)
      for (const next of edges(name)) {
        expect(services, `${name} depends on unknown ${next}`).toHaveProperty(next)
        visit(next, [...path, name])
      }
    }
    for (const name of Object.keys(services)) visit(name, [])
  })
})

/** Returns every key path of the schema, such as 'hsm.members.pool_size'. */
function schemaKeys(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([key, value]) => [
        `${prefix}${key}`,
        ...schemaKeys(value, `${prefix}${key}.`),
      ])
    case 'optional':
    case 'default':
    case 'nullable':
    case 'prefault':
    case 'readonly':
      return schemaKeys(def.innerType as z.ZodType, prefix)
    case 'array':
      return schemaKeys(def.element as z.ZodType, prefix)
    case 'union':
      return (def.options as z.ZodType[]).flatMap((option) => schemaKeys(option, prefix))
    case 'pipe':
      return schemaKeys(def.in as z.ZodType, prefix)
    default:
      return []
  }
}

describe('example configuration', () => {
  const file = join(ROOT, 'deploy', 'hsmgate.example.yaml')

  it('loads with the configuration loader', () => {
    const config = loadConfig(file)
    expect(config.metrics.backend_port).toBe(9465)
    expect(config.socket_group).toBe('hsmgate-envoy')
  })

  it('names every option of the schema', () => {
    const text = readFileSync(file, 'utf8')
    const keys = [...new Set(schemaKeys(configSchema))]
    expect(keys.length).toBeGreaterThan(40)
    // An option counts when its name starts a line, active or commented out ('# key:').
    const missing = keys.filter((path) => {
      const name = path.split('.').at(-1) ?? ''
      return !new RegExp(`^\\s*(#\\s*)?(- )?${name}:`, 'm').test(text)
    })
    expect(missing).toEqual([])
  })
})
