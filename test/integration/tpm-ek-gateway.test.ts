import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { GatewayError, postJson } from '../../client/gateway-client.js'
import {
  activateCredential,
  createAttestedKey,
  DEFAULT_TPM_SETTINGS,
  fetchNonce,
  type ActivationChallenge,
  type AttestedKey,
  type TpmSettings,
} from '../../client/tpm/index.js'
import { SqliteStore } from '../../store/index.js'
import {
  CLI,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.js'

// The EK certificate trust path through the real gateway (Envoy, authz, backend, SoftHSM2 CA)
// with swtpm behind tpm2-abrmd: no attestation key is registered, the gateway trusts the swtpm
// local CA as manufacturer CA and runs credential activation. Also the limits on
// POST /v1/enroll/nonce.

const NONCES_PER_SOURCE = 8

let gateway: TestGateway
let tpm: SoftwareTpm
let enrollUrl: string
let settings: TpmSettings

beforeAll(async () => {
  tpm = await startSoftwareTpm()
  settings = { ...DEFAULT_TPM_SETTINGS, tcti: tpm.tcti }
  process.env.DBUS_SESSION_BUS_ADDRESS = tpm.env.DBUS_SESSION_BUS_ADDRESS
  const { dir, port, enrollPort } = await initGateway()
  writeFileSync(join(dir, 'tpm-manufacturers.pem'), tpm.manufacturerCasPem)
  const configFile = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(configFile, 'utf8')) as { pki: Record<string, unknown> }
  config.pki.tpm_trust = 'ek-certificate'
  config.pki.tpm_manufacturer_cas = 'tpm-manufacturers.pem'
  config.pki.tpm_nonces_per_source = NONCES_PER_SOURCE
  writeFileSync(configFile, stringify(config))
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

function keyProtectionOf(pem: string): string {
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString()
  return /1\.3\.6\.1\.4\.1\.32473\.1\.1:\s*\n\s*\.\.(\w+)/.exec(text)?.[1] ?? 'none'
}

async function withStore<T>(read: (store: SqliteStore) => Promise<T>): Promise<T> {
  const store = new SqliteStore(join(gateway.dir, 'store', 'hsmgate.db'))
  try {
    return await read(store)
  } finally {
    await store.close()
  }
}

const certificateCount = async () =>
  await withStore(async (store) => (await store.certificatesOf('reporting')).length)

/** Sends POST /v1/enroll and returns the response body, or the error code of a rejection. */
async function enrollRequest(body: Record<string, unknown>): Promise<Record<string, unknown>> {
  try {
    return await postJson(`${enrollUrl}/v1/enroll`, body, { ca: caPem() })
  } catch (error) {
    if (error instanceof GatewayError) return { error: error.code }
    throw error
  }
}

/** Issues a certificate with an openssl CA for a fresh RSA 2048 key; returns the DER. */
function certificateFor(caCert: string, caKey: string, name: string): string {
  const dir = gateway.dir
  execFileSync('openssl', [
    ...['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`],
    ...['-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`)],
  ])
  const der = execFileSync('openssl', [
    ...['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', caCert, '-CAkey', caKey],
    ...['-set_serial', '77', '-days', '30', '-outform', 'der'],
  ])
  return der.toString('base64')
}

async function attested(): Promise<AttestedKey> {
  return createAttestedKey(settings, await fetchNonce(enrollUrl, caPem()))
}

describe('EK certificate trust path', () => {
  it('enrolls through credential activation', async () => {
    const created = await cli([
      ...['agent', 'tpm-ak', '--out', join(gateway.dir, 'ak.b64')],
      ...['--tpm-tcti', tpm.tcti],
    ])
    expect(created.code, created.stderr).toBe(0)
    const dir = join(gateway.dir, 'agent-ek')
    const enrolled = await cli([
      ...['agent', 'enroll', '--gateway', enrollUrl, '--ca', ca()],
      ...['--token', await token('payments', 'localhost,127.0.0.1')],
      ...['--out', dir, '--tpm', '--tpm-tcti', tpm.tcti],
    ])
    expect(enrolled.code, enrolled.stderr).toBe(0)
    expect(enrolled.stderr).toContain('running TPM credential activation')
    expect(keyProtectionOf(readFileSync(join(dir, 'client.crt'), 'utf8'))).toBe('tpm')
  }, 120_000)

  it('renews through credential activation', async () => {
    const dir = join(gateway.dir, 'agent-ek')
    const before = readFileSync(join(dir, 'client.crt'), 'utf8')
    const renewed = await cli([
      ...['agent', 'run', '--gateway', gateway.url, '--ca', ca(), '--dir', dir],
      ...['--once', '--force'],
    ])
    expect(renewed.code, renewed.stderr).toBe(0)
    expect(renewed.stderr).toContain('running TPM credential activation')
    const after = readFileSync(join(dir, 'client.crt'), 'utf8')
    expect(after).not.toBe(before)
    expect(keyProtectionOf(after)).toBe('tpm')
  }, 120_000)

  it('rejects an EK certificate from an unknown CA', async () => {
    const dir = gateway.dir
    execFileSync('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=other-manufacturer'],
      ...['-keyout', join(dir, 'other-ca.key'), '-out', join(dir, 'other-ca.pem'), '-days', '30'],
    ])
    const key = await attested()
    const ekCertificate = certificateFor(join(dir, 'other-ca.pem'), join(dir, 'other-ca.key'), 'x')
    const count = await certificateCount()
    const answer = await enrollRequest({
      token: await token('reporting', 'localhost'),
      csr: key.csrPem,
      tpm: { ...key.evidence, ek_certificate: ekCertificate },
    })
    expect(answer).toEqual({ error: 'ek_certificate_untrusted' })
    expect(await certificateCount()).toBe(count)
  }, 60_000)

  it('rejects a request without an EK certificate', async () => {
    const key = await attested()
    const evidence: Record<string, unknown> = { ...key.evidence }
    delete evidence.ek_certificate
    const answer = await enrollRequest({
      token: await token('reporting', 'localhost'),
      csr: key.csrPem,
      tpm: evidence,
    })
    expect(answer).toEqual({ error: 'ek_certificate_untrusted' })
  }, 60_000)

  it('fails activation for a certificate of another key', async () => {
    const key = await attested()
    const ekCertificate = certificateFor(tpm.localCa.cert, tpm.localCa.key, 'not-the-ek')
    const body = {
      token: await token('reporting', 'localhost'),
      csr: key.csrPem,
      tpm: { ...key.evidence, ek_certificate: ekCertificate },
    }
    const count = await certificateCount()
    const first = await enrollRequest(body)
    const challenge = first.activation as ActivationChallenge
    expect(challenge.challenge_id).toMatch(/^[0-9a-f]{32}$/)
    // The TPM cannot decrypt a seed encrypted to a key that is not its EK.
    await expect(activateCredential(settings, 'rsa', challenge)).rejects.toThrow(
      /tpm2_activatecredential/,
    )
    const guess = {
      challenge_id: challenge.challenge_id,
      secret: randomBytes(32).toString('base64'),
    }
    const second = await enrollRequest({ ...body, tpm: { ...body.tpm, activation: guess } })
    expect(second).toEqual({ error: 'activation_failed' })
    expect(await certificateCount()).toBe(count)
  }, 60_000)

  it('rejects a wrong activation answer', async () => {
    const key = await attested()
    const body = {
      token: await token('reporting', 'localhost'),
      csr: key.csrPem,
      tpm: key.evidence,
    }
    const challenge = (await enrollRequest(body)).activation as ActivationChallenge
    const wrong = {
      challenge_id: challenge.challenge_id,
      secret: randomBytes(32).toString('base64'),
    }
    const count = await certificateCount()
    expect(await enrollRequest({ ...body, tpm: { ...body.tpm, activation: wrong } })).toEqual({
      error: 'activation_failed',
    })
    // A challenge takes one answer: the right one after a wrong one is too late.
    const secret = await activateCredential(settings, 'rsa', challenge)
    const right = { challenge_id: challenge.challenge_id, secret: secret.toString('base64') }
    expect(await enrollRequest({ ...body, tpm: { ...body.tpm, activation: right } })).toEqual({
      error: 'activation_challenge_used',
    })
    expect(await certificateCount()).toBe(count)
    // The token of the rejected requests is still unused.
    expect(
      await withStore(async (store) => (await store.enrollmentToken(hashOf(body.token)))?.usedAt),
    ).toBeNull()
  }, 60_000)

  it('rejects a replayed challenge answer', async () => {
    const key = await attested()
    const body = {
      token: await token('reporting', 'localhost'),
      csr: key.csrPem,
      tpm: key.evidence,
    }
    const challenge = (await enrollRequest(body)).activation as ActivationChallenge
    const secret = await activateCredential(settings, 'rsa', challenge)
    const answer = { challenge_id: challenge.challenge_id, secret: secret.toString('base64') }
    const done = await enrollRequest({ ...body, tpm: { ...body.tpm, activation: answer } })
    expect(typeof done.certificate).toBe('string')
    expect(keyProtectionOf(done.certificate as string)).toBe('tpm')
    const replay = { ...body, token: await token('reporting', 'localhost') }
    const count = await certificateCount()
    expect(await enrollRequest({ ...replay, tpm: { ...replay.tpm, activation: answer } })).toEqual({
      error: 'activation_challenge_used',
    })
    expect(await certificateCount()).toBe(count)
  }, 60_000)
})

describe('nonce endpoint limits', () => {
  it('bounds a flood and still serves a token holder', async () => {
    const before = await withStore(async (store) => await store.tpm.nonceCount())
    const outcomes = new Map<string, number>()
    for (let i = 0; i < 60; i++) {
      let outcome: string
      try {
        await fetchNonce(enrollUrl, caPem())
        outcome = 'issued'
      } catch (error) {
        outcome = error instanceof GatewayError ? error.code : String(error)
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }
    // Earlier tests hold some of the address's nonces, so at most NONCES_PER_SOURCE are issued.
    expect(outcomes.get('issued') ?? 0).toBeLessThanOrEqual(NONCES_PER_SOURCE)
    expect(outcomes.get('nonce_limit')).toBeGreaterThanOrEqual(60 - NONCES_PER_SOURCE)
    expect(outcomes.size).toBe(2)
    const after = await withStore(async (store) => await store.tpm.nonceCount())
    expect(after - before).toBeLessThanOrEqual(NONCES_PER_SOURCE)

    // An agent that presents its token gets nonces of its own and enrolls.
    const value = await token('payments', 'localhost,127.0.0.1')
    const enrolled = await cli([
      ...['agent', 'enroll', '--gateway', enrollUrl, '--ca', ca(), '--token', value],
      ...['--out', join(gateway.dir, 'agent-after-flood'), '--tpm', '--tpm-tcti', tpm.tcti],
    ])
    expect(enrolled.code, enrolled.stderr).toBe(0)
  }, 120_000)

  it('bounds the nonces of one token', async () => {
    const value = await token('reporting', 'localhost')
    const codes: string[] = []
    for (let i = 0; i < 6; i++) {
      codes.push(
        await fetchNonce(enrollUrl, caPem(), value).then(
          () => 'issued',
          (error: unknown) => (error instanceof GatewayError ? error.code : String(error)),
        ),
      )
    }
    expect(codes).toEqual(['issued', 'issued', 'issued', 'issued', 'nonce_limit', 'nonce_limit'])
  }, 60_000)

  it('rejects an unknown token', async () => {
    const attempt = fetchNonce(enrollUrl, caPem(), 'not-a-token')
    await expect(attempt).rejects.toMatchObject({ code: 'token_unknown' })
  }, 60_000)
})

function hashOf(value: string): string {
  return execFileSync('sha256sum', { input: value }).toString().split(' ')[0] ?? ''
}
