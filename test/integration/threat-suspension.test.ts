// Operator responses through the real gateway: suspending and resuming an application with
// 'hsmgate apps', extending a quota with an approval, and configuration errors at load.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CLI,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

const run = promisify(execFile)
let gateway: TestGateway
let dir: string
let configText: string

async function cli(args: string[]) {
  try {
    const { stdout } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
    })
    return { code: 0, stdout, stderr: '' }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

function tlsArgs(cert: string, key: string): string[] {
  return ['--gateway', gateway.url, '--ca', join(dir, 'apps', 'payments', 'ca.crt')].concat([
    '--cert',
    cert,
    '--tls-key',
    key,
  ])
}

const random = () => postJson(gateway, 'payments', '/v1/random', { length: 8 })

beforeAll(async () => {
  const setup = await initGateway()
  dir = setup.dir
  const file = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>
  config.authz = {
    ...config.authz,
    quotas: [
      { name: 'random-burst', app: 'payments', operation: 'random', limit: 2, window: '10m' },
    ],
    approvals: {
      groups: { operators: ['olga'] },
      rules: [{ operations: ['quota-extension'], group: 'operators', required: 1 }],
    },
  }
  configText = stringify(config)
  writeFileSync(file, configText)
  const issued = await cli([
    'approvals',
    'identity',
    'olga',
    '--dir',
    dir,
    '--out',
    join(dir, 'people'),
  ])
  expect(issued.code, issued.stderr).toBe(0)
  gateway = await startUp(dir, setup.port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

describe('apps suspend and resume', () => {
  it('take effect on the next request through the running gateway', async () => {
    expect((await random()).status).toBe(200)
    const suspended = await cli(['apps', 'suspend', 'payments', '--dir', dir])
    expect(suspended.code, suspended.stderr).toBe(0)
    expect(JSON.parse(suspended.stdout)).toMatchObject({ app: 'payments', suspended: true })
    const denied = await random()
    expect(denied.status).toBe(403)
    expect((denied.json().error as Record<string, unknown>).policy_ids).toEqual([
      'suspended-application',
    ])
    const other = await postJson(gateway, 'reporting', '/v1/random', { length: 8 })
    expect(other.status).toBe(200)

    const resumed = await cli(['apps', 'resume', 'payments', '--dir', dir])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect((await random()).status).toBe(200)
  })

  it('reject an unknown application by name', async () => {
    const result = await cli(['apps', 'suspend', 'nobody', '--dir', dir])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("application 'nobody' is not registered")
    expect(result.stderr).toContain('payments')
  })
})

describe('quota extension', () => {
  it('lets more requests through after an approver agrees', async () => {
    // Two of the two allowed requests were used above.
    const over = await random()
    expect(over.status).toBe(429)
    const payments = join(dir, 'apps', 'payments')
    const requested = await cli([
      'approvals',
      'request',
      ...tlsArgs(`${payments}/client.crt`, `${payments}/client.key`),
      '--operation',
      'quota-extension',
      '--quota',
      'random-burst',
      '--extra',
      '2',
      '--ttl',
      '5m',
    ])
    expect(requested.code, requested.stderr).toBe(0)
    const id = String((JSON.parse(requested.stdout) as { id: string }).id)
    expect((await random()).status).toBe(429)

    const olga = join(dir, 'people', 'olga')
    const approved = await cli([
      'approvals',
      'approve',
      id,
      ...tlsArgs(`${olga}.crt`, `${olga}.key`),
    ])
    expect(approved.code, approved.stderr).toBe(0)
    expect((await random()).status).toBe(200)
    expect((await random()).status).toBe(200)
    expect((await random()).status).toBe(429)
  })

  it('is requested only for a quota of the caller', async () => {
    const reporting = join(dir, 'apps', 'reporting')
    const result = await cli([
      'approvals',
      'request',
      ...tlsArgs(`${reporting}/client.crt`, `${reporting}/client.key`),
      '--operation',
      'quota-extension',
      '--quota',
      'random-burst',
      '--extra',
      '1000',
    ])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('400')
  })
})

describe('approvals configuration', () => {
  it('is rejected at load when the group cannot reach the required count', async () => {
    const bad = configText.replace('required: 1', 'required: 2')
    expect(bad).not.toBe(configText)
    writeFileSync(join(dir, 'hsmgate.yaml'), bad)
    try {
      const result = await cli(['apps', 'list', '--dir', dir])
      expect(result.code).toBe(78)
      expect(result.stderr).toContain('authz.approvals.rules.0.required')
    } finally {
      writeFileSync(join(dir, 'hsmgate.yaml'), configText)
    }
  })
})
