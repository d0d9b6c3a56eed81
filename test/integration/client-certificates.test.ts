import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../store/index.js'
import {
  CLI,
  curl,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// Enrollment, renewal, host binding and clone detection through the real gateway: Envoy with
// both listeners, authz, the backend and the SoftHSM2 CA key. Clone detection suspends here.

let gateway: TestGateway
let enrollUrl: string
const sign = JSON.stringify({ message: Buffer.from('x').toString('base64') })

beforeAll(async () => {
  const { dir, port, enrollPort } = await initGateway()
  const config = readFileSync(join(dir, 'hsmgate.yaml'), 'utf8')
  writeFileSync(
    join(dir, 'hsmgate.yaml'),
    config.replace(
      '  decision_secret: secrets/decision.key\nbackend:',
      [
        '  decision_secret: secrets/decision.key',
        '  clone_detection: { suspend: true }',
        'backend:',
      ].join('\n'),
    ),
  )
  gateway = await startUp(dir, port)
  enrollUrl = `https://127.0.0.1:${enrollPort}`
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

const ca = () => join(gateway.dir, 'pki', 'ca.crt')

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'info' },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

async function token(app: string, host: string, ttl = '10m'): Promise<string> {
  const res = await cli([
    'tokens',
    'create',
    '--dir',
    gateway.dir,
    '--app',
    app,
    '--host',
    host,
    '--ttl',
    ttl,
  ])
  expect(res.code, res.stderr).toBe(0)
  const value = (JSON.parse(res.stdout) as { token: string }).token
  expect(res.stderr).not.toContain(value)
  return value
}

const enroll = (value: string, out: string, extra: string[] = []) =>
  cli([
    'agent',
    'enroll',
    '--gateway',
    enrollUrl,
    '--ca',
    ca(),
    '--token',
    value,
    '--out',
    out,
    ...extra,
  ])
const renew = (dir: string) =>
  cli(['agent', 'run', '--gateway', gateway.url, '--ca', ca(), '--dir', dir, '--once', '--force'])

/** Signs as the holder of the key and certificate in `dir`, from `source`. */
function signAs(dir: string, source = '127.0.0.1', cert = 'client.crt', key = 'client.key') {
  return curl(`${gateway.url}/v1/keys/payments-signing/sign`, [
    ...['--interface', source, '--cacert', ca()],
    ...['--cert', join(dir, cert), '--key', join(dir, key)],
    ...['-H', 'content-type: application/json', '--data-binary', sign],
  ])
}

const agentDir = () => join(gateway.dir, 'agent-payments')

describe('enrollment', () => {
  it('enroll issues a host-bound certificate once', async () => {
    const value = await token('payments', 'localhost,127.0.0.1')
    const first = await enroll(value, agentDir())
    expect(first.code, first.stderr).toBe(0)
    const pem = join(agentDir(), 'client.crt')
    execFileSync('openssl', ['verify', '-CAfile', ca(), pem], { stdio: 'pipe' })
    const text = execFileSync('openssl', ['x509', '-in', pem, '-noout', '-text'], {
      encoding: 'utf8',
    })
    expect(text).toContain(
      'URI:spiffe://hsmgate.demo/app/payments, DNS:localhost, IP Address:127.0.0.1',
    )
    expect(text).toContain('TLS Web Client Authentication')
    expect(text).toMatch(/1\.3\.6\.1\.4\.1\.32473\.1\.1:\s*\n\s*\.\.software/)
    const leaf = new X509Certificate(readFileSync(pem))
    expect(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)).toBe(3_600_000)
    expect((await signAs(agentDir())).status).toBe(200)

    const again = await enroll(value, join(gateway.dir, 'agent-again'))
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('token_used')
    expect(readFileSync(join(gateway.dir, 'logs', 'crypto-backend.log'), 'utf8')).not.toContain(
      value,
    )
  })

  it('enroll rejects expired and unknown tokens', async () => {
    const value = await token('reporting', 'host-b', '1s')
    await new Promise((resolve) => setTimeout(resolve, 1_200))
    const expired = await enroll(value, join(gateway.dir, 'agent-expired'))
    expect(expired.stderr).toContain('token_expired')
    const unknown = await enroll(`${value}x`, join(gateway.dir, 'agent-unknown'))
    expect(unknown.stderr).toContain('token_unknown')
  })

  it('enroll ignores SANs in the CSR', async () => {
    const value = await token('reporting', 'host-r,127.0.0.1')
    const dir = join(gateway.dir, 'smuggle')
    execFileSync('mkdir', ['-p', dir])
    const csr = (args: string[]) => {
      execFileSync(
        'openssl',
        [
          'req',
          '-new',
          '-nodes',
          ...args,
          '-keyout',
          join(dir, 'k'),
          '-out',
          join(dir, 'r'),
        ].concat([
          '-subj',
          '/CN=payments',
          '-addext',
          'subjectAltName=URI:spiffe://hsmgate.demo/app/payments,IP:10.9.9.9',
        ]),
        { stdio: 'pipe' },
      )
      return readFileSync(join(dir, 'r'), 'utf8')
    }
    const post = (body: object) =>
      curl(`${enrollUrl}/v1/enroll`, [
        '--cacert',
        ca(),
        '-H',
        'content-type: application/json',
        '--data-binary',
        JSON.stringify(body),
      ])
    const weak = await post({ token: value, csr: csr(['-newkey', 'rsa:1024']) })
    expect(weak.status).toBe(400)
    expect(weak.json()).toMatchObject({ error: { code: 'csr_invalid' } })
    const ok = await post({
      token: value,
      csr: csr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    })
    expect(ok.status, ok.body).toBe(200)
    const issued = new X509Certificate(String(ok.json().certificate))
    expect(issued.subjectAltName).toBe(
      'URI:spiffe://hsmgate.demo/app/reporting, DNS:host-r, IP Address:127.0.0.1',
    )
  })

  it('enroll route exists on enroll listener only', async () => {
    const onMain = await curl(`${gateway.url}/v1/enroll`, [
      ...[
        '--cacert',
        ca(),
        '--cert',
        join(agentDir(), 'client.crt'),
        '--key',
        join(agentDir(), 'client.key'),
      ],
      ...['--data-binary', '{}'],
    ])
    expect(onMain.status).toBe(404)
    for (const path of ['/v1/keys', '/v1/random', '/v1/certs/renew', '/v1/health']) {
      const res = await curl(`${enrollUrl}${path}`, [
        '--cacert',
        ca(),
        '--data-binary',
        '{"length":1}',
      ])
      expect(res.status, path).toBe(404)
    }
  })
})

describe('host binding', () => {
  it('host binding denies 127.0.0.2', async () => {
    const file = join(gateway.dir, 'policies', 'source-address.cedar')
    writeFileSync(
      file,
      '@id("source-matches-host")\n@reason("requests must come from the certificate host")\n' +
        'forbid (principal is Hsmgate::Application, action, resource)\n' +
        'unless { context.sourceMatchesHost };\n',
    )
    try {
      let denied = false
      for (let i = 0; i < 40 && !denied; i++) {
        const res = await signAs(agentDir(), '127.0.0.2')
        denied = res.status === 403
        if (denied)
          expect(res.json()).toMatchObject({ error: { policy_ids: ['source-matches-host'] } })
        else await new Promise((resolve) => setTimeout(resolve, 250))
      }
      expect(denied).toBe(true)
      expect((await signAs(agentDir(), '127.0.0.1')).status).toBe(200)
    } finally {
      rmSync(file)
    }
  })
})

describe('renewal and clone detection', () => {
  it('renew rejects key reuse, superseded and revoked', async () => {
    const dir = agentDir()
    execFileSync('cp', [join(dir, 'client.crt'), join(dir, 'old.crt')])
    execFileSync('cp', [join(dir, 'client.key'), join(dir, 'old.key')])
    const sameKey = execFileSync(
      'openssl',
      ['req', '-new', '-key', join(dir, 'client.key')].concat(['-subj', '/CN=x']),
      { encoding: 'utf8' },
    )
    const reuse = await curl(`${gateway.url}/v1/certs/renew`, [
      ...['--cacert', ca(), '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key')],
      ...['-H', 'content-type: application/json', '--data-binary'],
      JSON.stringify({ certificate: readFileSync(join(dir, 'client.crt'), 'utf8'), csr: sameKey }),
    ])
    expect(reuse.status).toBe(400)
    expect(reuse.json()).toMatchObject({ error: { code: 'key_reused' } })
    // Certificate times have one-second resolution; the successor must start later.
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const renewed = await renew(dir)
    expect(renewed.code, renewed.stderr).toBe(0)
    expect(readFileSync(join(dir, 'client.key'), 'utf8')).not.toBe(
      readFileSync(join(dir, 'old.key'), 'utf8'),
    )

    // The old certificate is still valid, but no longer the newest: renewal with it fails.
    const stale = join(gateway.dir, 'stale')
    execFileSync('mkdir', ['-m', '700', '-p', stale])
    execFileSync('cp', [join(dir, 'old.crt'), join(stale, 'client.crt')])
    execFileSync('cp', [join(dir, 'old.key'), join(stale, 'client.key')])
    const superseded = await renew(stale)
    expect(superseded.code).toBe(1)
    expect(superseded.stderr).toContain('certificate_superseded')

    const value = await token('reporting', 'host-x,127.0.0.1')
    const revokedDir = join(gateway.dir, 'agent-revoked')
    // An RSA key here, so that issuance and mutual TLS with RSA client keys run too.
    expect((await enroll(value, revokedDir, ['--key-type', 'rsa-2048'])).code).toBe(0)
    const serial = new X509Certificate(readFileSync(join(revokedDir, 'client.crt'))).serialNumber
    const store = new SqliteStore(join(gateway.dir, 'store', 'hsmgate.db'))
    try {
      expect(
        await store.revokeCertificate(
          serial.toLowerCase(),
          'keyCompromise',
          new Date().toISOString(),
        ),
      ).toBe(true)
    } finally {
      await store.close()
    }
    const revoked = await renew(revokedDir)
    expect(revoked.code).toBe(1)
    expect(revoked.stderr).toMatch(/revoked/)
  })

  it('clone use is denied, alerted and suspended', async () => {
    const dir = agentDir()
    expect((await signAs(dir)).status).toBe(200)
    const clone = await signAs(dir, '127.0.0.1', 'old.crt', 'old.key')
    expect(clone.status).toBe(403)
    expect(clone.json()).toMatchObject({ error: { code: 'certificate_superseded' } })
    const log = readFileSync(join(gateway.dir, 'logs', 'authz.log'), 'utf8')
    const oldSerial = new X509Certificate(readFileSync(join(dir, 'old.crt'))).serialNumber
    const newSerial = new X509Certificate(readFileSync(join(dir, 'client.crt'))).serialNumber
    const alert = log.split('\n').find((line) => line.includes('"alert":"certificate_clone"'))
    expect(alert).toContain(oldSerial.toLowerCase())
    expect(alert).toContain(newSerial.toLowerCase())
    const decisionId = (clone.json().error as { decision_id: string }).decision_id
    expect(alert).toContain(decisionId)

    const after = await signAs(dir)
    expect(after.status).toBe(403)
    expect(after.json()).toMatchObject({ error: { policy_ids: ['suspended-application'] } })
  })
})
