import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  curl,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { issueWithSetupCa } from '../helpers/test-issuer.js'

// The certificates hsmgate issues, checked with openssl, curl and s_client against real Envoy.

let gateway: TestGateway
let work: string
let enrollPort: number
const principal = 'spiffe://hsmgate.demo/app/payments'

beforeAll(async () => {
  const { dir, port, enrollPort: enroll } = await initGateway()
  enrollPort = enroll
  gateway = await startUp(dir, port)
  work = mkdtempSync(join(tmpdir(), 'hsmgate-pki-'))
})

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

const pki = (name: string): string => join(gateway.dir, 'pki', name)

async function text(cert: string): Promise<string> {
  return (await execFileAsync('openssl', ['x509', '-in', cert, '-noout', '-text'])).stdout
}

/** Runs openssl s_client as payments and returns its output and the chain the server sent. */
async function sClient(): Promise<{ output: string; leaf: string }> {
  const app = join(gateway.dir, 'apps', 'payments')
  const { stdout } = await execFileAsync('sh', [
    '-c',
    `openssl s_client -connect 127.0.0.1:${gateway.port} -servername localhost -showcerts ` +
      `-CAfile ${pki('ca.crt')} -cert ${app}/client.crt -key ${app}/client.key </dev/null`,
  ])
  const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)![0]
  return { output: stdout, leaf }
}

describe('certificate profiles', () => {
  it('gives the root, client and serving certificates the right extensions', async () => {
    const root = await text(pki('ca.crt'))
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
    expect(root).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/)

    const client = await text(join(gateway.dir, 'apps', 'payments', 'client.crt'))
    expect(client).toMatch(/Basic Constraints: critical\s+CA:FALSE/)
    expect(client).toMatch(/Key Usage: critical\s+Digital Signature/)
    expect(client).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication\n/)
    expect(client).toMatch(/Subject Key Identifier/)
    expect(client).toMatch(/Authority Key Identifier/)
    expect(client).toContain(`URI:${principal}`)
    expect(client).toMatch(
      new RegExp(`CRL Distribution Points:[\\s\\S]+URI:https://127.0.0.1:${enrollPort}/v1/crl`),
    )

    const { output, leaf } = await sClient()
    expect(output).toContain('Verify return code: 0 (ok)')
    const served = join(work, 'served.crt')
    writeFileSync(served, leaf + '\n')
    const serving = await text(served)
    expect(serving).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication\n/)
    expect(serving).toMatch(/DNS:localhost, IP Address:127.0.0.1/)
    expect(serving).toMatch(/Basic Constraints: critical\s+CA:FALSE/)

    const verified = await execFileAsync('openssl', [
      'verify',
      '-crl_check',
      '-CAfile',
      pki('ca.crt'),
      '-CRLfile',
      pki('crl.pem'),
      served,
      join(gateway.dir, 'apps', 'payments', 'client.crt'),
      join(gateway.dir, 'apps', 'reporting', 'client.crt'),
    ])
    expect(verified.stdout.trim().split('\n')).toHaveLength(3)
    expect(verified.stdout).not.toMatch(/error/)
  })

  it('publishes a CRL signed by the CA that openssl reads', async () => {
    const { stdout } = await execFileAsync('openssl', [
      'crl',
      '-in',
      pki('crl.pem'),
      '-CAfile',
      pki('ca.crt'),
      '-noout',
      '-text',
    ])
    expect(stdout).toMatch(/X509v3 CRL Number/)
    expect(stdout).toMatch(/Next Update: /)
  })

  it('serves the CRL at the distribution point without a client certificate', async () => {
    const text = await execFileAsync('openssl', [
      'x509',
      '-in',
      join(gateway.dir, 'apps', 'payments', 'client.crt'),
      '-noout',
      '-ext',
      'crlDistributionPoints',
    ])
    const url = /URI:(\S+)/.exec(text.stdout)?.[1]
    expect(url).toBe(`https://127.0.0.1:${enrollPort}/v1/crl`)

    const der = join(work, 'fetched.crl')
    const { stdout } = await execFileAsync('curl', [
      ...['-sS', '--fail', '--cacert', pki('ca.crt'), '-o', der, '-w', '%{content_type}', url!],
    ])
    expect(stdout).toBe('application/pkix-crl')
    const parsed = await execFileAsync('openssl', [
      ...['crl', '-inform', 'DER', '-in', der, '-CAfile', pki('ca.crt'), '-noout'],
    ])
    expect(parsed.stderr).toContain('verify OK')
  })

  it('refuses a serverAuth-only certificate, renewal included', async () => {
    const server = await issueWithSetupCa(gateway.dir, work, 'server-only', 'server', {
      uri: [principal],
    })
    const client = await issueWithSetupCa(gateway.dir, work, 'client-ok', 'client', {
      uri: [principal],
    })
    // TLS 1.2 makes the server's verdict on the client certificate part of the handshake,
    // so curl reports the alert instead of a broken pipe on its first write.
    const tls = (cert: { cert: string; key: string }) => [
      '--tls-max',
      '1.2',
      '--cacert',
      pki('ca.crt'),
      '--cert',
      cert.cert,
      '--key',
      cert.key,
    ]
    // The same issuer and identity with the clientAuth usage passes, so the usage decides.
    expect((await curl(`${gateway.url}/v1/keys`, tls(client))).status).toBe(200)
    await expect(curl(`${gateway.url}/v1/keys`, tls(server))).rejects.toThrow(
      /alert unsupported certificate/,
    )
    // Renewal runs on the same mutual-TLS listener, so such a certificate cannot renew either.
    const renew = [...tls(server), '-H', 'content-type: application/json', '--data-binary', '{}']
    await expect(curl(`${gateway.url}/v1/certs/renew`, renew)).rejects.toThrow(
      /alert unsupported certificate/,
    )
  })
})
