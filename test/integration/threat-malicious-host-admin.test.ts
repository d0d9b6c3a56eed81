// Scenario: a malicious administrator of an application host copies the payments client key.
// Each layer runs through the real gateway (Envoy, authz, backend, SoftHSM2). The copied key
// used from another address is denied and alerted. Bulk use is throttled and alerted, and it
// suspends the application. A restricted decrypt needs two approvers. Afterwards the audit log
// verifies and contains every step.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CLI,
  appTls,
  curl,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { appCredentials } from '../helpers/tls-client.js'

const run = promisify(execFile)
const alerts: Array<Record<string, unknown>> = []
let webhookAttempts = 0
let webhook: Server
let gateway: TestGateway
let dir: string
const people = ['alice', 'bob', 'mallory']
const steps: Record<string, string> = {}

async function cli(args: string[]) {
  try {
    const { stdout } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
    })
    return {
      code: 0,
      stdout,
      stderr: '',
      json: () => JSON.parse(stdout) as Record<string, unknown>,
    }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    const json = (): Record<string, unknown> => ({})
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr, json }
  }
}

function personTls(name: string): string[] {
  const base = join(dir, 'people', name)
  return ['--gateway', gateway.url, '--ca', join(dir, 'apps', 'payments', 'ca.crt')].concat([
    '--cert',
    `${base}.crt`,
    '--tls-key',
    `${base}.key`,
  ])
}

function appApiTls(): string[] {
  const base = join(dir, 'apps', 'payments')
  return ['--gateway', gateway.url, '--ca', `${base}/ca.crt`].concat([
    '--cert',
    `${base}/client.crt`,
    '--tls-key',
    `${base}/client.key`,
  ])
}

/** POSTs /v1/random as payments over one of `agent`'s connections. */
function randomRequest(
  agent: Agent,
): Promise<{ status: number; retryAfter?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ length: 8 })
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.port,
        path: '/v1/random',
        method: 'POST',
        agent,
        timeout: 10_000,
      },
      (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            body: text,
          }),
        )
      },
    )
    req.setHeader('content-type', 'application/json')
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(body)
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitForAlert(rule: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50; i++) {
    const found = alerts.find((alert) => alert.rule === rule)
    if (found !== undefined) return found
    await sleep(100)
  }
  throw new Error(`no ${rule} alert within 5 s; received: ${JSON.stringify(alerts)}`)
}

beforeAll(async () => {
  // A webhook receiver that fails the first attempt, so alerts are delivered by a retry.
  webhook = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => (body += chunk.toString()))
    req.on('end', () => {
      webhookAttempts++
      if (webhookAttempts === 1) return void res.writeHead(500).end()
      alerts.push(JSON.parse(body) as Record<string, unknown>)
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve))
  const address = webhook.address()
  const webhookPort = typeof address === 'object' && address !== null ? address.port : 0

  const setup = await initGateway()
  dir = setup.dir
  const configFile = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>
  config.authz = {
    ...config.authz,
    quotas: [
      { name: 'payments-random', app: 'payments', operation: 'random', limit: 8, window: '1m' },
    ],
    anomalies: [
      { kind: 'new_source_address', action: ['alert'] },
      { kind: 'serial_multiple_addresses', action: ['alert'] },
      {
        kind: 'rate',
        action: ['alert', 'suspend'],
        factor: 10,
        bucket: '2s',
        alpha: 0.5,
        warmup_buckets: 2,
        min_requests: 10,
      },
    ],
    alerts: { webhook_url: `http://127.0.0.1:${webhookPort}/alerts`, webhook_backoff: '100ms' },
    approvals: {
      groups: { custodians: ['alice', 'bob'] },
      rules: [
        { operations: ['decrypt'], keys: ['payments-data'], group: 'custodians', required: 2 },
      ],
    },
  }
  writeFileSync(configFile, stringify(config))
  // The host-binding policy from the policy guide: requests only from the application's host.
  writeFileSync(
    join(dir, 'policies', 'source-address.cedar'),
    '@id("source-matches-host")\n@reason("requests must come from a host registered for the application")\n' +
      'forbid (principal is Hsmgate::Application, action, resource)\nunless { context.sourceMatchesHost };\n',
  )
  for (const name of people) {
    const issued = await cli([
      'approvals',
      'identity',
      name,
      '--dir',
      dir,
      '--out',
      join(dir, 'people'),
    ])
    expect(issued.code, issued.stderr).toBe(0)
  }
  gateway = await startUp(dir, setup.port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
  await new Promise((resolve) => webhook?.close(resolve))
})

describe('malicious host administrator', () => {
  it('is denied and alerted when the copied key is used from another address', async () => {
    const own = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
    expect(own.status).toBe(200)
    const copied = await curl(`${gateway.url}/v1/random`, [
      ...appTls(dir, 'payments'),
      '--interface',
      '127.0.0.2',
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify({ length: 8 }),
    ])
    expect(copied.status).toBe(403)
    const error = copied.json().error as Record<string, unknown>
    expect(error.policy_ids).toEqual(['source-matches-host'])
    steps.copied = String(error.decision_id)

    const newAddress = await waitForAlert('new_source_address')
    expect(newAddress.app).toBe('payments')
    expect(newAddress.subject).toBe('127.0.0.2')
    expect(newAddress.decision_id).toBe(steps.copied)
    const twoAddresses = await waitForAlert('serial_multiple_addresses')
    expect(twoAddresses.app).toBe('payments')
    // The first POST failed; the alert arrived by a retry.
    expect(webhookAttempts).toBeGreaterThan(alerts.length)
    // No body, plaintext or key material in any alert.
    expect(JSON.stringify(alerts)).not.toMatch(/BEGIN|PRIVATE|"length"|random"/)
  })

  it('is throttled, alerted and suspended at ten times the normal rate', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 16, ...appCredentials(dir, 'payments') })
    try {
      // Normal use: one request per two-second bucket for three buckets.
      for (let i = 0; i < 3; i++) {
        expect((await randomRequest(agent)).status).toBe(200)
        await sleep(2_000)
      }
      const burst = await Promise.all(Array.from({ length: 30 }, () => randomRequest(agent)))
      const statuses = burst.map((r) => r.status)
      const throttled = burst.filter((r) => r.status === 429)
      expect(throttled.length, statuses.join(',')).toBeGreaterThan(0)
      const retryAfter = Number(throttled[0]?.retryAfter)
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(60)
      const quotaError = (
        JSON.parse(throttled[0]?.body ?? '{}') as { error: Record<string, unknown> }
      ).error
      expect(quotaError.code).toBe('quota_exceeded')
      expect(String(quotaError.decision_id)).toMatch(/^d_/)
      steps.throttled = String(quotaError.decision_id)
      expect(statuses).toContain(403)

      const rate = await waitForAlert('rate')
      expect(rate.actions).toEqual(['suspend'])
      const listed = await cli(['apps', 'list', '--dir', dir])
      const apps = JSON.parse(listed.stdout) as Array<{ name: string; suspended: boolean }>
      expect(apps.find((a) => a.name === 'payments')?.suspended).toBe(true)

      // Every further request of the application is denied, other operations included.
      const after = await postJson(gateway, 'payments', '/v1/keys/payments-signing/sign', {
        message: Buffer.from('x').toString('base64'),
      })
      expect(after.status).toBe(403)
      expect((after.json().error as Record<string, unknown>).policy_ids).toEqual([
        'suspended-application',
      ])
    } finally {
      agent.destroy()
    }
  }, 60_000)

  it('decrypts a restricted value only after two approvers agree', async () => {
    const resumed = await cli(['apps', 'resume', 'payments', '--dir', dir])
    expect(resumed.code, resumed.stderr).toBe(0)
    const encrypted = await postJson(gateway, 'payments', '/v1/keys/payments-data/encrypt', {
      plaintext: Buffer.from('card 4111').toString('base64'),
    })
    expect(encrypted.status, encrypted.body).toBe(200)
    const decryptBody = JSON.stringify({ ciphertext: encrypted.json().ciphertext })
    const bodyFile = join(dir, 'decrypt.json')
    writeFileSync(bodyFile, decryptBody)

    const first = await postJson(gateway, 'payments', '/v1/keys/payments-data/decrypt', decryptBody)
    expect(first.status).toBe(403)
    expect((first.json().error as Record<string, unknown>).code).toBe('approval_required')

    const requested = await cli([
      'approvals',
      'request',
      ...appApiTls(),
      '--operation',
      'decrypt',
      '--key',
      'payments-data',
      '--body-file',
      bodyFile,
    ])
    expect(requested.code, requested.stderr).toBe(0)
    const id = String(requested.json().id)
    steps.request = String(requested.json().decision_id)

    // Bypass attempts: the requester, a person outside the group, the same approver twice.
    const self = await cli(['approvals', 'approve', id, ...appApiTls()])
    expect(self.code).toBe(1)
    expect(self.stderr).toContain('403')
    const outsider = await cli(['approvals', 'approve', id, ...personTls('mallory')])
    expect(outsider.code).toBe(1)
    expect(outsider.stderr).toContain('403')

    const shown = await cli(['approvals', 'show', id, ...personTls('alice')])
    expect(shown.json()).toMatchObject({
      operation: 'decrypt',
      key: 'payments-data',
      status: 'pending',
    })
    expect(String(shown.json().params_digest)).toMatch(/^[0-9a-f]{64}$/)
    const alice = await cli(['approvals', 'approve', id, ...personTls('alice')])
    expect(alice.code, alice.stderr).toBe(0)
    steps.alice = String(alice.json().decision_id)
    const again = await cli(['approvals', 'approve', id, ...personTls('alice')])
    expect(again.stderr).toContain('approver_already_voted')

    const oneApproval = await postJson(
      gateway,
      'payments',
      '/v1/keys/payments-data/decrypt',
      decryptBody,
    )
    expect(oneApproval.status).toBe(403)

    const bob = await cli(['approvals', 'approve', id, ...personTls('bob')])
    expect(bob.json().status).toBe('granted')
    steps.bob = String(bob.json().decision_id)

    // The grant does not cover another body.
    const otherBody = JSON.stringify({ ciphertext: encrypted.json().ciphertext, version: 1 })
    const other = await postJson(gateway, 'payments', '/v1/keys/payments-data/decrypt', otherBody)
    expect(other.status).toBe(403)

    const decrypted = await postJson(
      gateway,
      'payments',
      '/v1/keys/payments-data/decrypt',
      decryptBody,
    )
    expect(decrypted.status, decrypted.body).toBe(200)
    expect(Buffer.from(String(decrypted.json().plaintext), 'base64').toString()).toBe('card 4111')
    steps.decrypt = String(decrypted.json().decision_id)

    const reused = await postJson(
      gateway,
      'payments',
      '/v1/keys/payments-data/decrypt',
      decryptBody,
    )
    expect(reused.status).toBe(403)
    expect((reused.json().error as Record<string, unknown>).code).toBe('approval_required')
  }, 60_000)

  it('leaves an audit log that verifies and holds every step', async () => {
    const verified = await cli(['audit', 'verify', '--dir', dir])
    expect(verified.code, `${verified.stdout}\n${verified.stderr}`).toBe(0)
    const exported = await cli(['audit', 'export', '--dir', dir])
    expect(exported.code, exported.stderr).toBe(0)
    const records = exported.stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    const decisionIds = new Set(records.map((r) => r.decisionId ?? r.decision_id))
    for (const [step, id] of Object.entries(steps)) {
      expect(decisionIds.has(id), `audit record of step ${step} (${id})`).toBe(true)
    }
  })
})
