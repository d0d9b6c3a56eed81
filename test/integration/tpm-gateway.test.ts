import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createAttestedKey,
  DEFAULT_TPM_SETTINGS,
  fetchNonce,
  postJsonWithTpmKey,
  TPM_OPENSSL_CONF,
  type AttestedKey,
  type TpmSettings,
} from '../../client/tpm/index.js'
import { SqliteStore } from '../../store/index.js'
import {
  CLI,
  curl,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.js'

// TPM enrollment and renewal through the real gateway (Envoy, authz, backend, SoftHSM2 CA) with
// swtpm behind tpm2-abrmd. curl signs the TLS handshake with the TPM key via tpm2-openssl.

let gateway: TestGateway
let tpm: SoftwareTpm
let enrollUrl: string
let settings: TpmSettings
const sign = JSON.stringify({ message: Buffer.from('x').toString('base64') })

const TPM_POLICY = `@id("payments-sign-needs-tpm")
@reason("payments signs only with a client key held in a TPM")
forbid (principal is Hsmgate::Application, action == Hsmgate::Action::"sign", resource)
when { principal.name == "payments" && context.certificate.keyProtection != "tpm" };
`

beforeAll(async () => {
  tpm = await startSoftwareTpm()
  settings = { ...DEFAULT_TPM_SETTINGS, tcti: tpm.tcti }
  process.env.DBUS_SESSION_BUS_ADDRESS = tpm.env.DBUS_SESSION_BUS_ADDRESS
  const { dir, port, enrollPort } = await initGateway()
  writeFileSync(join(dir, 'policies', 'tpm-required.cedar'), TPM_POLICY)
  writeFileSync(join(dir, 'tpm-openssl.cnf'), TPM_OPENSSL_CONF)
  gateway = await startUp(dir, port)
  enrollUrl = `https://127.0.0.1:${enrollPort}`
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
  await tpm?.stop()
})

const ca = () => join(gateway.dir, 'pki', 'ca.crt')
const caPem = () => readFileSync(ca(), 'utf8')

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env: { ...tpm.env, HSMGATE_LOG_LEVEL: 'info' },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

async function token(app: string, host: string): Promise<string> {
  const res = await cli(['tokens', 'create', '--dir', gateway.dir, '--app', app, '--host', host])
  expect(res.code, res.stderr).toBe(0)
  return (JSON.parse(res.stdout) as { token: string }).token
}

/** Signs with payments-signing as the holder of DIR's key, through tpm2-openssl for a TPM key. */
function signAs(dir: string) {
  return curl(`${gateway.url}/v1/keys/payments-signing/sign`, [
    ...['--cacert', ca(), '--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key')],
    ...['-H', 'content-type: application/json', '--data-binary', sign],
  ])
}

function withTpmOpenssl<T>(run: () => Promise<T>): Promise<T> {
  process.env.OPENSSL_CONF = join(gateway.dir, 'tpm-openssl.cnf')
  process.env.TPM2OPENSSL_TCTI = tpm.tcti
  return run().finally(() => {
    delete process.env.OPENSSL_CONF
    delete process.env.TPM2OPENSSL_TCTI
  })
}

function keyProtectionOf(pem: string): string {
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString()
  return /1\.3\.6\.1\.4\.1\.32473\.1\.1:\s*\n\s*\.\.(\w+)/.exec(text)?.[1] ?? 'none'
}

async function certificateCount(): Promise<number> {
  const store = new SqliteStore(join(gateway.dir, 'store', 'hsmgate.db'))
  try {
    return (
      (await store.certificatesOf('payments')).length +
      (await store.certificatesOf('reporting')).length
    )
  } finally {
    await store.close()
  }
}

const tpmDir = () => join(gateway.dir, 'agent-tpm')
const enrollTpm = (value: string, out: string) =>
  cli([
    ...['agent', 'enroll', '--gateway', enrollUrl, '--ca', ca(), '--token', value],
    ...['--out', out, '--tpm', '--tpm-tcti', tpm.tcti],
  ])

describe('TPM enrollment', () => {
  it('registers the host attestation key', async () => {
    const file = join(gateway.dir, 'ak.b64')
    const created = await cli(['agent', 'tpm-ak', '--out', file, '--tpm-tcti', tpm.tcti])
    expect(created.code, created.stderr).toBe(0)
    const name = (JSON.parse(created.stdout) as { ak_name: string }).ak_name
    const registered = await cli([
      ...['tpm', 'register-ak', '--dir', gateway.dir],
      ...['--host', 'localhost', '--ak-public', file],
    ])
    expect(registered.code, registered.stderr).toBe(0)
    expect(JSON.parse(registered.stdout)).toEqual({ ak_name: name, host: 'localhost' })
  }, 60_000)

  it('issues a tpm certificate that curl uses', async () => {
    const enrolled = await enrollTpm(await token('payments', 'localhost,127.0.0.1'), tpmDir())
    expect(enrolled.code, enrolled.stderr).toBe(0)
    const pem = readFileSync(join(tpmDir(), 'client.crt'), 'utf8')
    expect(keyProtectionOf(pem)).toBe('tpm')
    expect(readFileSync(join(tpmDir(), 'client.key'), 'utf8')).toContain('TSS2 PRIVATE KEY')
    execFileSync('openssl', ['verify', '-CAfile', ca(), join(tpmDir(), 'client.crt')])
    const signed = await withTpmOpenssl(() => signAs(tpmDir()))
    expect(signed.status, signed.body).toBe(200)
  }, 120_000)

  it('policy denies the same app with a software key', async () => {
    const dir = join(gateway.dir, 'agent-software')
    const value = await token('payments', 'software-host,127.0.0.1')
    const enrolled = await cli([
      ...['agent', 'enroll', '--gateway', enrollUrl, '--ca', ca(), '--token', value],
      ...['--out', dir],
    ])
    expect(enrolled.code, enrolled.stderr).toBe(0)
    expect(keyProtectionOf(readFileSync(join(dir, 'client.crt'), 'utf8'))).toBe('software')
    const denied = await signAs(dir)
    expect(denied.status).toBe(403)
    expect(denied.body).toContain('payments signs only with a client key held in a TPM')
  }, 60_000)

  it('renews with a new TPM key and attestation', async () => {
    const before = readFileSync(join(tpmDir(), 'client.crt'), 'utf8')
    const keyBefore = readFileSync(join(tpmDir(), 'client.key'), 'utf8')
    const renewed = await cli([
      ...['agent', 'run', '--gateway', gateway.url, '--ca', ca(), '--dir', tpmDir()],
      ...['--once', '--force'],
    ])
    expect(renewed.code, renewed.stderr).toBe(0)
    expect(renewed.stderr).toContain('new TPM key certified')
    const after = readFileSync(join(tpmDir(), 'client.crt'), 'utf8')
    expect(new X509Certificate(after).serialNumber).not.toBe(
      new X509Certificate(before).serialNumber,
    )
    expect(readFileSync(join(tpmDir(), 'client.key'), 'utf8')).not.toBe(keyBefore)
    expect(keyProtectionOf(after)).toBe('tpm')
    const signed = await withTpmOpenssl(() => signAs(tpmDir()))
    expect(signed.status, signed.body).toBe(200)
  }, 120_000)

  it('renewal without attestation is rejected', async () => {
    const software = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const keyFile = join(gateway.dir, 'software-renewal.key')
    writeFileSync(keyFile, software.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const csr = execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      keyFile,
      '-subj',
      '/CN=x',
    ]).toString()
    const current = readFileSync(join(tpmDir(), 'client.crt'), 'utf8')
    const attempt = postJsonWithTpmKey(
      `${gateway.url}/v1/certs/renew`,
      { certificate: new X509Certificate(current).toString(), csr },
      {
        ca: caPem(),
        cert: current,
        keyPem: readFileSync(join(tpmDir(), 'client.key'), 'utf8'),
      },
      tpm.tcti,
    )
    await expect(attempt).rejects.toMatchObject({ code: 'attestation_required' })
  }, 60_000)
})

describe('TPM enrollment rejects', () => {
  let fresh: AttestedKey

  /** Posts an enrollment and returns the error code, checking that nothing was issued. */
  async function rejected(body: Record<string, unknown>): Promise<string> {
    const count = await certificateCount()
    const res = await curl(`${enrollUrl}/v1/enroll`, [
      ...['--cacert', ca(), '-H', 'content-type: application/json'],
      ...['--data-binary', JSON.stringify(body)],
    ])
    expect(res.status, res.body).toBeGreaterThanOrEqual(400)
    expect(await certificateCount()).toBe(count)
    return String((res.json().error as { code: string }).code)
  }

  beforeAll(async () => {
    fresh = await createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
  }, 60_000)

  it('rejects a replayed attestation', async () => {
    const value = await token('reporting', 'localhost')
    const body = { token: value, csr: fresh.csrPem, tpm: fresh.evidence }
    const first = await curl(`${enrollUrl}/v1/enroll`, [
      ...['--cacert', ca(), '-H', 'content-type: application/json'],
      ...['--data-binary', JSON.stringify(body)],
    ])
    expect(first.status, first.body).toBe(200)
    const second = { ...body, token: await token('reporting', 'localhost') }
    expect(await rejected(second)).toBe('nonce_used')
    // The token of the rejected request is still unused.
    const reuse = await curl(`${enrollUrl}/v1/enroll`, [
      ...['--cacert', ca(), '-H', 'content-type: application/json'],
      ...['--data-binary', JSON.stringify({ token: second.token, csr: fresh.csrPem })],
    ])
    expect(reuse.status, reuse.body).toBe(200)
  }, 60_000)

  it('rejects a nonce the gateway never issued', async () => {
    const forged = await createAttestedKey(settings, Buffer.alloc(32, 1))
    const body = { token: await token('reporting', 'localhost'), csr: forged.csrPem }
    expect(await rejected({ ...body, tpm: forged.evidence })).toBe('nonce_unknown')
  }, 60_000)

  it('rejects an unknown attestation key', async () => {
    // Same TPM, different template: without noDA the primary is another key with another name.
    const other = { ...settings, ak: 0x81010003 }
    const context = join(gateway.dir, 'other-ak.ctx')
    const attributes = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'
    await execFileAsync(
      'tpm2_createprimary',
      ['-C', 'e', '-G', 'ecc256:ecdsa-sha256:null', '-a', attributes, '-c', context, '-Q'],
      { env: tpm.env },
    )
    await execFileAsync('tpm2_evictcontrol', ['-C', 'o', '-c', context, '0x81010003'], {
      env: tpm.env,
    })
    const unregistered = await createAttestedKey(other, await fetchNonce(enrollUrl, caPem()))
    const body = { token: await token('reporting', 'localhost'), csr: unregistered.csrPem }
    expect(await rejected({ ...body, tpm: unregistered.evidence })).toBe('attestation_key_unknown')
  }, 60_000)

  it('rejects tampered certify info', async () => {
    const good = await createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
    const attest = Buffer.from(good.evidence.attest, 'base64')
    attest[attest.length - 1]! ^= 0x01
    const tpmField = { ...good.evidence, attest: attest.toString('base64') }
    const body = { token: await token('reporting', 'localhost'), csr: good.csrPem }
    expect(await rejected({ ...body, tpm: tpmField })).toBe('attestation_signature_invalid')
  }, 60_000)

  it('rejects a certified name that is not the CSR key', async () => {
    const certified = await createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
    const other = await createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
    const tpmField = { ...certified.evidence, public: other.evidence.public }
    const body = { token: await token('reporting', 'localhost'), csr: other.csrPem }
    expect(await rejected({ ...body, tpm: tpmField })).toBe('attestation_mismatch')
  }, 60_000)

  it('rejects a software key claimed as TPM-resident', async () => {
    const good = await createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
    const dir = join(gateway.dir, 'software-claim')
    mkdirSync(dir, { recursive: true })
    const csr = execFileSync('openssl', [
      ...['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      ...['-keyout', join(dir, 'k'), '-subj', '/CN=x'],
    ]).toString()
    const body = { token: await token('reporting', 'localhost'), csr }
    expect(await rejected({ ...body, tpm: good.evidence })).toBe('attestation_mismatch')
  }, 60_000)
})
