import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  appTls,
  CLI,
  curl,
  execFileAsync,
  initGateway,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'
import { issueWithSetupCa } from '../helpers/test-issuer.js'

// An organisation's root, made with openssl, certifies the CA key that `hsmgate ca init`
// generated in SoftHSM2 while the gateway runs; the running gateway then issues and serves with
// that intermediate, and Envoy trusts the new chain, without a restart.

let dir: string
let port: number
let enrollPort: number
let work: string
let gateway: TestGateway | undefined

beforeAll(async () => {
  ;({ dir, port, enrollPort } = await initGateway())
  work = mkdtempSync(join(tmpdir(), 'hsmgate-ca-'))
  gateway = await startUp(dir, port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  rmSync(dir, { recursive: true, force: true })
  rmSync(work, { recursive: true, force: true })
})

const at = (name: string): string => join(work, name)

async function hsmgate(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(process.execPath, [CLI, ...args, '--dir', dir], {
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  })
  return JSON.parse(stdout) as Record<string, unknown>
}

/** Retries `probe` every 500 ms for up to 40 seconds until it returns true. */
async function eventually(probe: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 80; i++) {
    if (await probe().catch(() => false)) return true
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  return false
}

async function openssl(...args: string[]): Promise<string> {
  return (await execFileAsync('openssl', args)).stdout
}

/** Signs the CSR with the organisation's root, with a CA or a leaf profile. */
async function signCsr(out: string, ca: boolean): Promise<void> {
  const profile = ca
    ? 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n'
    : 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
  writeFileSync(at('ext.cnf'), `[v3]\n${profile}subjectKeyIdentifier=hash\n`)
  await openssl(
    'x509',
    '-req',
    '-in',
    at('ca.csr'),
    '-CA',
    at('root.crt'),
    '-CAkey',
    at('root.key'),
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    at('ext.cnf'),
    '-extensions',
    'v3',
    '-out',
    out,
  )
}

describe('hsmgate ca init and import', () => {
  it('writes a CSR signed by the new HSM key', async () => {
    const result = await hsmgate(
      'ca',
      'init',
      '--csr',
      at('ca.csr'),
      '--subject',
      'CN=Acme hsmgate CA, O=Acme',
    )
    expect(result.key_id).toMatch(/^[0-9a-f]{32}$/)
    expect(await openssl('req', '-in', at('ca.csr'), '-noout', '-verify', '-subject')).toMatch(
      /CN ?= ?Acme hsmgate CA/,
    )

    await openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      at('root.key'),
      '-out',
      at('root.crt'),
      '-days',
      '60',
      '-subj',
      '/CN=Acme Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    )
  })

  it('rejects wrong key, leaf, missing root', async () => {
    await expect(hsmgate('ca', 'import', at('root.crt'))).rejects.toThrow(
      /certifies a different public key/,
    )
    await signCsr(at('leaf-profile.crt'), false)
    await expect(hsmgate('ca', 'import', at('leaf-profile.crt'))).rejects.toThrow(
      /is not a CA certificate/,
    )
    await signCsr(at('intermediate.crt'), true)
    await expect(hsmgate('ca', 'import', at('intermediate.crt'))).rejects.toThrow(
      /not a self-signed root; pass the issuers/,
    )
  })

  it('running gateway switches to the imported CA', async () => {
    const pid = gateway!.up.pid
    expect((await curl(`${gateway!.url}/v1/keys`, appTls(dir, 'payments'))).status).toBe(200)

    const result = await hsmgate('ca', 'import', at('intermediate.crt'), '--chain', at('root.crt'))
    expect(result.root).toBe('CN=Acme Root')
    expect(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8')).toMatch(/ca_chain: pki\/ca-chain.pem/)

    // Once the backend has switched, the serving certificate chains to the organisation's root
    // and Envoy accepts a client certificate of the new CA.
    const issued = await issueWithSetupCa(dir, work, 'reporting', 'client', {
      uri: ['spiffe://hsmgate.demo/app/reporting'],
    })
    const other = ['--cacert', at('root.crt'), '--cert', issued.cert, '--key', issued.key]
    const switched = await eventually(
      async () => (await curl(`${gateway!.url}/v1/keys`, other)).status === 200,
    )
    expect(switched).toBe(true)

    // Enrollment through the running gateway issues under the imported intermediate.
    const created = await hsmgate(
      ...['tokens', 'create', '--app', 'payments', '--host', 'localhost,127.0.0.1'],
    )
    const agentDir = join(work, 'agent')
    await execFileAsync(process.execPath, [
      ...[CLI, 'agent', 'enroll', '--gateway', `https://127.0.0.1:${enrollPort}`],
      ...['--ca', at('root.crt'), '--token', String(created.token), '--out', agentDir],
    ])
    const leaf = join(agentDir, 'client.crt')
    const issuer = await openssl('x509', '-in', leaf, '-noout', '-issuer')
    expect(issuer).toMatch(/CN ?= ?Acme hsmgate CA/)
    const verified = await openssl(
      ...['verify', '-crl_check', '-CAfile', at('root.crt')],
      ...['-untrusted', at('intermediate.crt'), '-CRLfile', join(dir, 'pki', 'crl.pem'), leaf],
    )
    expect(verified).toContain(': OK')
    // Envoy trusts the enrolled certificate of the new chain...
    const tls = ['--cacert', at('root.crt'), '--cert', leaf, '--key', join(agentDir, 'client.key')]
    expect((await curl(`${gateway!.url}/v1/keys`, tls)).status).toBe(200)
    // ...and no longer trusts certificates of the previous CA; they must be issued again.
    await expect(
      curl(`${gateway!.url}/v1/keys`, [
        ...appTls(dir, 'payments'),
        '--cacert',
        at('root.crt'),
        '--tls-max',
        '1.2',
      ]),
    ).rejects.toThrow(/alert/)

    // The same `hsmgate up` process served all of this.
    expect(gateway!.up.pid).toBe(pid)
    expect(gateway!.up.exitCode).toBeNull()
  }, 120_000)
})
