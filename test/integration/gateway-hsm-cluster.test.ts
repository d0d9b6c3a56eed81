import { execFile } from 'node:child_process'
import { constants, createHmac, createPublicKey, verify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  appTls,
  CLI,
  curl,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// The whole path (Envoy, authz, backend, two SoftHSM2 tokens) with keys made by
// `hsmgate keys create`; results are checked with openssl and node:crypto.

const run = promisify(execFile)
let gateway: TestGateway
let work: string
const b64 = (data: Buffer | string) => Buffer.from(data).toString('base64')

async function keys(dir: string, args: string[]) {
  return run(process.execPath, [CLI, 'keys', ...args, '--dir', dir], {
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout + e.stderr,
    }),
  )
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hsmgate-cluster-'))
  const { dir, port } = await initGateway()
  for (const [name, type] of [
    ['payments-rsa', 'rsa-2048'],
    ['payments-mac', 'hmac-sha256'],
    ['payments-wrap', 'aes-wrap'],
    ['payments-ed', 'ed25519'],
  ] as const) {
    const created = await keys(dir, ['create', name, '--type', type, '--owner', 'payments'])
    expect(created.code, created.stdout).toBe(0)
  }
  gateway = await startUp(dir, port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
  rmSync(work, { recursive: true, force: true })
})

describe('operations through the gateway', () => {
  it('RSA-PSS signature verifies with openssl', async () => {
    const message = Buffer.from('statement 2026-12\n')
    const described = await curl(
      `${gateway.url}/v1/keys/payments-rsa`,
      appTls(gateway.dir, 'payments'),
    )
    const pem = String(described.json().public_key_pem)
    const signed = await postJson(gateway, 'payments', '/v1/keys/payments-rsa/sign', {
      message: b64(message),
    })
    expect(signed.status, signed.body).toBe(200)
    const signature = Buffer.from(String(signed.json().signature), 'base64')
    writeFileSync(join(work, 'pub.pem'), pem)
    writeFileSync(join(work, 'msg'), message)
    writeFileSync(join(work, 'sig'), signature)
    const pss = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1']
    const args = [
      'dgst',
      '-sha256',
      ...pss,
      '-verify',
      join(work, 'pub.pem'),
      '-signature',
      join(work, 'sig'),
    ]
    const { stdout } = await run('openssl', [...args, join(work, 'msg')])
    expect(stdout).toContain('Verified OK')
    const key = {
      key: createPublicKey(pem),
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    }
    expect(verify('sha256', message, key, signature)).toBe(true)
  })

  it('Ed25519, HMAC, wrap and data keys work for the owning application', async () => {
    const ed = await postJson(gateway, 'payments', '/v1/keys/payments-ed/sign', {
      message: b64('hi'),
    })
    expect(ed.json().algorithm).toBe('ED25519')
    const mac = await postJson(gateway, 'payments', '/v1/keys/payments-mac/hmac', {
      message: b64('hi'),
    })
    expect(Buffer.from(String(mac.json().mac), 'base64')).toHaveLength(32)
    const material = b64(Buffer.alloc(32, 7))
    const wrapped = await postJson(gateway, 'payments', '/v1/keys/payments-wrap/wrap', {
      key_material: material,
    })
    const unwrapped = await postJson(gateway, 'payments', '/v1/keys/payments-wrap/unwrap', {
      wrapped: wrapped.json().wrapped,
    })
    expect(unwrapped.json().key_material).toBe(material)
    const dataKey = await postJson(gateway, 'payments', '/v1/keys/payments-data/data-key', {})
    expect(dataKey.status, dataKey.body).toBe(200)
    const plaintext = Buffer.from(String(dataKey.json().plaintext), 'base64')
    expect(createHmac('sha256', plaintext).update('x').digest()).toHaveLength(32)
  })

  it('an application creates a key of its own and signs with it', async () => {
    const path = '/v1/keys/payments-fresh'
    const created = await postJson(gateway, 'payments', `${path}/create`, {
      type: 'ec',
      curve: 'P-384',
    })
    expect(created.status, created.body).toBe(201)
    expect(created.json()).toMatchObject({ type: 'ec-p384', owner: 'payments', version: 1 })
    const signed = await postJson(gateway, 'payments', `${path}/sign`, { message: b64('x') })
    expect(signed.json().algorithm).toBe('ECDSA_SHA_384')
  })

  it('another application may not use the keys', async () => {
    const denied = await postJson(gateway, 'reporting', '/v1/keys/payments-mac/hmac', {
      message: b64('hi'),
    })
    expect(denied.status).toBe(403)
  })

  it('rotation keeps old signatures verifiable; destroy makes the key unusable', async () => {
    const first = await postJson(gateway, 'payments', '/v1/keys/payments-ed/sign', {
      message: b64('v1'),
    })
    const rotated = await postJson(gateway, 'payments', '/v1/keys/payments-ed/rotate', {})
    expect(rotated.status, rotated.body).toBe(200)
    expect(rotated.json().version).toBe(2)
    const old = await postJson(gateway, 'payments', '/v1/keys/payments-ed/verify', {
      message: b64('v1'),
      signature: first.json().signature,
      version: 1,
    })
    expect(old.json().valid).toBe(true)
    const destroyed = await postJson(gateway, 'payments', '/v1/keys/payments-ed/destroy', {})
    expect(destroyed.status, destroyed.body).toBe(200)
    const after = await postJson(gateway, 'payments', '/v1/keys/payments-ed/sign', {
      message: b64('x'),
    })
    expect(after.status).toBe(409)
  })

  it('health names each member with its counters', async () => {
    const pki = join(gateway.dir, 'pki')
    const tls = [
      '--cacert',
      `${pki}/ca.crt`,
      '--cert',
      `${pki}/probe.crt`,
      '--key',
      `${pki}/probe.key`,
    ]
    const health = await curl(`${gateway.url}/v1/health`, tls)
    expect(health.status, health.body).toBe(200)
    const members = health.json().members as Array<Record<string, unknown>>
    expect(members.map((m) => [m.name, m.state])).toEqual([
      ['hsm-a', 'healthy'],
      ['hsm-b', 'healthy'],
    ])
    expect(members[0]?.counters).toMatchObject({ failovers: 0, retries: 0 })
    expect(Number((members[0]?.counters as { operations: number }).operations)).toBeGreaterThan(0)
  })
})

describe('hsmgate keys check', () => {
  it('passes, then names the member that lost a key', async () => {
    const ok = await keys(gateway.dir, ['check'])
    expect(ok.code, ok.stdout).toBe(0)
    const db = JSON.parse((await keys(gateway.dir, ['list'])).stdout) as Array<{ name: string }>
    expect(db.map((k) => k.name)).toContain('payments-mac')
    const stored = JSON.parse(ok.stdout) as Array<{ key: string; members: unknown[] }>
    expect(stored.find((r) => r.key === 'payments-mac')?.members).toHaveLength(2)

    const pin = readFileSync(join(gateway.dir, 'secrets', 'hsm-b.pin'), 'utf8').trim()
    const conf = { ...process.env, SOFTHSM2_CONF: join(gateway.dir, 'hsm', 'softhsm2.conf') }
    const ckaId = await ckaIdOf(gateway.dir, 'payments-mac')
    const tool = ['--module', '/usr/lib/softhsm/libsofthsm2.so', '--token-label', 'hsmgate-b']
    await run(
      'pkcs11-tool',
      [...tool, '--login', '--pin', pin, '--delete-object', '--type', 'secrkey', '--id', ckaId],
      { env: conf },
    )
    const bad = await keys(gateway.dir, ['check', 'payments-mac'])
    expect(bad.code).toBe(1)
    const report = JSON.parse(bad.stdout.slice(0, bad.stdout.lastIndexOf(']') + 1)) as Array<{
      ok: boolean
      members: Array<{ member: string; state: string }>
    }>
    expect(report[0]?.ok).toBe(false)
    expect(report[0]?.members).toContainEqual({ member: 'hsm-b', state: 'missing' })
  })
})

async function ckaIdOf(dir: string, name: string): Promise<string> {
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(join(dir, 'store', 'hsmgate.db'), { readonly: true })
  try {
    return (db.prepare('SELECT cka_id FROM keys WHERE name = ?').get(name) as { cka_id: string })
      .cka_id
  } finally {
    db.close()
  }
}
