import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CLI,
  curl,
  execFileAsync,
  freePorts,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// Follows the first-install steps of docs/operations.md on loopback: a setup without demo
// applications, the issuing CA certified by an organisation root made with openssl, a
// registered application, a key, an enrollment token, `hsmgate up`, `hsmgate agent enroll`,
// and a signed request with the enrolled certificate.

const work = mkdtempSync(join(tmpdir(), 'hsmgate-install-'))
const dir = join(work, 'setup')
const at = (name: string): string => join(work, name)
let ports: { port: number; stats: number; enroll: number }
let gateway: TestGateway | undefined

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI and resolves with its exit code and output, whatever the code. */
function hsmgate(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, HSMGATE_LOG_LEVEL: 'warn' }
    execFile(
      process.execPath,
      [CLI, ...args],
      { env, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

async function ok(...args: string[]): Promise<Record<string, unknown>> {
  const run = await hsmgate(...args)
  expect(run.stderr, args.join(' ')).not.toMatch(/hsmgate: /)
  expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0)
  return JSON.parse(run.stdout) as Record<string, unknown>
}

async function openssl(...args: string[]): Promise<string> {
  return (await execFileAsync('openssl', args)).stdout
}

beforeAll(async () => {
  const [port, stats, enroll] = (await freePorts(3)) as [number, number, number]
  ports = { port, stats, enroll }
}, 30_000)

afterAll(async () => {
  await gateway?.stop()
  rmSync(work, { recursive: true, force: true })
})

describe('first install', () => {
  it('creates a setup without demo applications', async () => {
    const run = await hsmgate(
      'init',
      '--dir',
      dir,
      '--no-demo-apps',
      '--trust-domain',
      'example.internal',
      '--port',
      String(ports.port),
      '--enroll-port',
      String(ports.enroll),
      '--stats-port',
      String(ports.stats),
    )
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse((await hsmgate('apps', 'list', '--dir', dir)).stdout)).toEqual([])
    expect(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8')).toContain(
      'trust_domain: example.internal',
    )
  }, 120_000)

  it('rejects an invalid trust domain', async () => {
    const run = await hsmgate('init', '--dir', at('bad'), '--trust-domain', 'Example_Org')
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("--trust-domain 'Example_Org' is invalid")
  })

  it('moves the issuing CA under the organisation root', async () => {
    await ok(
      'ca',
      'init',
      '--dir',
      dir,
      '--csr',
      at('ca.csr'),
      '--subject',
      'CN=Example hsmgate CA',
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
      '365',
      '-subj',
      '/CN=Example Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    )
    // The extension file and signing command of the guide's step 3.
    writeFileSync(
      at('ca.ext'),
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' +
        'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    )
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
      '180',
      '-extfile',
      at('ca.ext'),
      '-out',
      at('ca.crt'),
    )
    const imported = await ok('ca', 'import', at('ca.crt'), '--chain', at('root.crt'), '--dir', dir)
    expect(imported.root).toContain('Example Root')
  }, 60_000)

  it('validates the starter policies', async () => {
    const run = await hsmgate('policy', 'check', '--dir', dir)
    expect(run.code, run.stderr).toBe(0)
  })

  it('registers the first application', async () => {
    const app = await ok(
      'apps',
      'create',
      'billing',
      '--team',
      'finance',
      '--host',
      'localhost',
      '--address',
      '127.0.0.1,::1',
      '--dir',
      dir,
    )
    expect(app).toMatchObject({
      name: 'billing',
      team: 'finance',
      hosts: ['localhost'],
      addresses: ['127.0.0.1', '::1'],
      suspended: false,
    })
    expect(await ok('apps', 'show', 'billing', '--dir', dir)).toEqual({
      ...app,
      approval_hold: false,
    })
  })

  it('rejects a duplicate and invalid application options', async () => {
    const again = [
      '--team',
      'finance',
      '--host',
      'localhost',
      '--address',
      '127.0.0.1',
      '--dir',
      dir,
    ]
    const duplicate = await hsmgate('apps', 'create', 'billing', ...again)
    expect(duplicate.code).toBe(1)
    expect(duplicate.stderr).toContain("application 'billing' is already registered")

    const cases: Array<[string[], string]> = [
      [['Billing', ...again], "application name 'Billing' is invalid"],
      [['ok-app', '--host', 'h', '--address', '127.0.0.1', '--dir', dir], 'needs --team TEAM'],
      [['ok-app', '--team', 'f', '--address', '127.0.0.1', '--dir', dir], 'needs --host'],
      [['ok-app', '--team', 'f', '--host', 'h', '--dir', dir], 'needs --address'],
      [
        ['ok-app', '--team', 'f', '--host', 'Bad_Host', '--address', '127.0.0.1', '--dir', dir],
        "--host 'Bad_Host'",
      ],
      [
        ['ok-app', '--team', 'f', '--host', 'h', '--address', '10.0.0.300', '--dir', dir],
        "--address '10.0.0.300'",
      ],
      [
        ['ok-app', '--team', 'f', '--host', 'h,', '--address', '127.0.0.1', '--dir', dir],
        'empty element',
      ],
    ]
    for (const [args, message] of cases) {
      const run = await hsmgate('apps', 'create', ...args)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr).toContain(message)
    }
    expect(JSON.parse((await hsmgate('apps', 'list', '--dir', dir)).stdout)).toHaveLength(1)
  })

  it('creates a key for the application', async () => {
    const key = await ok(
      'keys',
      'create',
      'billing-signing',
      '--type',
      'ec',
      '--owner',
      'billing',
      '--dir',
      dir,
    )
    expect(key).toMatchObject({
      name: 'billing-signing',
      owner: 'billing',
      classification: 'confidential',
    })
  }, 60_000)

  it('enrolls a host and signs through the running gateway', async () => {
    const token = await hsmgate(
      'tokens',
      'create',
      '--app',
      'billing',
      '--host',
      'localhost,127.0.0.1',
      '--dir',
      dir,
    )
    expect(token.code, token.stderr).toBe(0)
    writeFileSync(at('token.json'), token.stdout)

    gateway = await startUp(dir, ports.port)
    expect(gateway.stdout()).not.toContain('try:')
    expect(gateway.stdout()).toContain('hsmgate tokens create')
    const bundle = join(dir, 'pki', 'trust-bundle.pem')
    const enrolled = await ok(
      'agent',
      'enroll',
      '--gateway',
      `https://127.0.0.1:${ports.enroll}`,
      '--ca',
      bundle,
      '--token-file',
      at('token.json'),
      '--out',
      at('agent'),
    )
    expect(enrolled.serial).toMatch(/^[0-9a-f]+$/)

    const reply = await curl(`${gateway.url}/v1/keys/billing-signing/sign`, [
      '--cacert',
      bundle,
      '--cert',
      at('agent/client.crt'),
      '--key',
      at('agent/client.key'),
      '-H',
      'content-type: application/json',
      '--data-binary',
      '{"message":"aGVsbG8="}',
    ])
    expect(reply.status, reply.body).toBe(200)
    expect(reply.json().signature).toBeTruthy()
  }, 180_000)

  it('verifies a signature with openssl as the guide shows', async () => {
    // The commands of the guide's last step, with this test's gateway address and directories.
    copyFileSync(join(dir, 'pki', 'trust-bundle.pem'), at('trust-bundle.pem'))
    const script = [
      `tls="--cacert trust-bundle.pem --cert ${at('agent')}/client.crt --key ${at('agent')}/client.key"`,
      "printf 'hello hsmgate' > message.txt",
      "curl -sS --fail-with-body $tls -H 'content-type: application/json' \\",
      `  -d "{\\"message\\":\\"$(base64 -w0 message.txt)\\"}" ${gateway!.url}/v1/keys/billing-signing/sign |`,
      '  jq -r .signature | base64 -d > signature.der',
      `curl -sS --fail-with-body $tls ${gateway!.url}/v1/keys/billing-signing | jq -r .public_key_pem > public.pem`,
      'openssl dgst -sha256 -verify public.pem -signature signature.der message.txt',
    ].join('\n')
    const { stdout } = await execFileAsync('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: work,
    })
    expect(stdout.trim()).toBe('Verified OK')
    expect(readFileSync(at('public.pem'), 'utf8')).toContain('BEGIN PUBLIC KEY')

    // A different message must not verify against the same signature.
    writeFileSync(at('message.txt'), 'hello hsmgatE')
    const tampered = await execFileAsync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      at('public.pem'),
      '-signature',
      at('signature.der'),
      at('message.txt'),
    ]).then(
      () => 'verified',
      (error: { stdout: string }) => error.stdout,
    )
    expect(tampered).toContain('Verification failure')
  }, 60_000)

  it('names the enrollment port when enroll reaches the mutual TLS listener', async () => {
    const token = await hsmgate(
      'tokens',
      'create',
      '--app',
      'billing',
      '--host',
      'localhost,127.0.0.1',
      '--dir',
      dir,
    )
    writeFileSync(at('token2.json'), token.stdout)
    const run = await hsmgate(
      'agent',
      'enroll',
      '--gateway',
      `https://127.0.0.1:${ports.port}`,
      '--ca',
      join(dir, 'pki', 'trust-bundle.pem'),
      '--token-file',
      at('token2.json'),
      '--out',
      at('agent2'),
    )
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('certificate required')
    expect(run.stderr).toContain('enrollment listener (listen.enroll_port')
  }, 60_000)
})
