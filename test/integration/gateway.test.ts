import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  appTls,
  curl,
  execFileAsync,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// Real Envoy, real SoftHSM2 tokens and the compiled authz and backend processes, started by
// `hsmgate up`; the clients are curl, openssl and pkcs11-tool.

const run = promisify(execFile)
let gateway: TestGateway
let work: string

const b64 = (data: Buffer | string): string => Buffer.from(data).toString('base64')

function ckaIdOf(dir: string, key: string): string {
  const db = new Database(join(dir, 'store', 'hsmgate.db'), { readonly: true })
  try {
    const row = db.prepare('SELECT cka_id FROM keys WHERE name = ?').get(key) as { cka_id: string }
    return row.cka_id
  } finally {
    db.close()
  }
}

/** Reads a public key straight from token hsmgate-b with OpenSC's pkcs11-tool, as PEM. */
async function publicKeyFromToken(dir: string, key: string): Promise<string> {
  const der = join(work, `${key}.der`)
  const pin = readFileSync(join(dir, 'secrets', 'hsm-b.pin'), 'utf8').trim()
  await run(
    'pkcs11-tool',
    [
      '--module',
      '/usr/lib/softhsm/libsofthsm2.so',
      '--token-label',
      'hsmgate-b',
      '--login',
      '--pin',
      pin,
      '--read-object',
      '--type',
      'pubkey',
      '--id',
      ckaIdOf(dir, key),
      '-o',
      der,
    ],
    { env: { ...process.env, SOFTHSM2_CONF: join(dir, 'hsm', 'softhsm2.conf') } },
  )
  const { stdout } = await run('openssl', ['pkey', '-pubin', '-inform', 'DER', '-in', der])
  return stdout
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hsmgate-files-'))
  const { dir, port } = await initGateway()
  gateway = await startUp(dir, port)
})

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
  rmSync(work, { recursive: true, force: true })
})

describe('gateway request path', () => {
  it('signs a file that openssl verifies with the public key from the HSM', async () => {
    const file = join(work, 'invoice.txt')
    writeFileSync(file, 'invoice 2026-0042: 1,250.00 EUR\n'.repeat(40))
    const res = await postJson(gateway, 'payments', '/v1/keys/payments-signing/sign', {
      message: b64(readFileSync(file)),
    })
    expect(res.status).toBe(200)
    const body = res.json()
    expect(body.decision_id).toMatch(/^d_/)
    writeFileSync(join(work, 'sig.der'), Buffer.from(String(body.signature), 'base64'))
    writeFileSync(join(work, 'pub.pem'), await publicKeyFromToken(gateway.dir, 'payments-signing'))

    const verify = await run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      join(work, 'pub.pem'),
      '-signature',
      join(work, 'sig.der'),
      file,
    ])
    expect(verify.stdout).toContain('Verified OK')
  })

  it('rejects a signature over other data in openssl', async () => {
    const other = join(work, 'other.txt')
    writeFileSync(other, 'invoice 2026-0042: 9,250.00 EUR\n')
    const failure = await run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      join(work, 'pub.pem'),
      '-signature',
      join(work, 'sig.der'),
      other,
    ]).then(
      () => 'verified',
      (error: { stdout: string }) => error.stdout,
    )
    expect(failure).toContain('Verification failure')
  })

  it('round-trips a file through encrypt and decrypt', async () => {
    const plaintext = Buffer.from('card 4111 1111 1111 1111, exp 12/29\n'.repeat(100))
    const context = { tenant: 'acme', purpose: 'card-vault' }
    const enc = await postJson(gateway, 'payments', '/v1/keys/payments-data/encrypt', {
      plaintext: b64(plaintext),
      context,
    })
    expect(enc.status).toBe(200)
    const ciphertext = String(enc.json().ciphertext)
    expect(Buffer.from(ciphertext, 'base64').includes(plaintext.subarray(0, 16))).toBe(false)

    const dec = await postJson(gateway, 'payments', '/v1/keys/payments-data/decrypt', {
      ciphertext,
      context,
    })
    expect(dec.status).toBe(200)
    expect(Buffer.from(String(dec.json().plaintext), 'base64').equals(plaintext)).toBe(true)

    const tampered = Buffer.from(ciphertext, 'base64')
    tampered[tampered.length - 20]! ^= 0x01
    const bad = await postJson(gateway, 'payments', '/v1/keys/payments-data/decrypt', {
      ciphertext: b64(tampered),
      context,
    })
    expect(bad.status).toBe(400)
    expect((bad.json().error as { code: string }).code).toBe('decrypt_failed')

    const otherContext = await postJson(gateway, 'payments', '/v1/keys/payments-data/decrypt', {
      ciphertext,
      context: { tenant: 'other', purpose: 'card-vault' },
    })
    expect(otherContext.status).toBe(400)
  })

  it('denies reporting the payments key with a reason and decision id', async () => {
    const res = await postJson(gateway, 'reporting', '/v1/keys/payments-signing/sign', {
      message: b64('x'),
    })
    expect(res.status).toBe(403)
    const error = res.json().error as { code: string; message: string; decision_id: string }
    expect(error.code).toBe('forbidden')
    expect(error.message).toContain('payments-signing')
    expect(error.decision_id).toMatch(/^d_/)
  })

  it('runs the curl command that up prints', async () => {
    const line = gateway
      .stdout()
      .split('\n')
      .find((l) => l.trim().startsWith('curl '))
    expect(line).toBeDefined()
    const { stdout } = await run('bash', ['-c', line!.trim()])
    const body = JSON.parse(stdout) as { key: string; signature: string }
    expect(body.key).toBe('payments-signing')
    expect(Buffer.from(body.signature, 'base64')[0]).toBe(0x30)
  })

  it('serves random bytes from the HSM', async () => {
    const res = await postJson(gateway, 'payments', '/v1/random', { length: 48 })
    expect(res.status).toBe(200)
    expect(Buffer.from(String(res.json().random), 'base64')).toHaveLength(48)
  })
})

describe('gateway identity', () => {
  it('fails the TLS handshake without a client certificate', async () => {
    const args = ['-sS', '--cacert', join(gateway.dir, 'pki', 'ca.crt'), `${gateway.url}/v1/keys`]
    await expect(execFileAsync('curl', args)).rejects.toMatchObject({ code: expect.any(Number) })
  })

  it('fails the TLS handshake with a certificate from an unknown CA', async () => {
    const key = join(work, 'rogue.key')
    const cert = join(work, 'rogue.crt')
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=payments',
      '-addext',
      'subjectAltName=URI:spiffe://hsmgate.demo/app/payments',
    ])
    const curlTry = execFileAsync('curl', [
      '-sS',
      '--cacert',
      join(gateway.dir, 'pki', 'ca.crt'),
      '--cert',
      cert,
      '--key',
      key,
      `${gateway.url}/v1/keys`,
    ])
    await expect(curlTry).rejects.toMatchObject({ code: expect.any(Number) })

    // s_client reads no request from stdin here; it reports the server's alert and exits.
    const sClient = await run('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${gateway.port}`,
      '-CAfile',
      join(gateway.dir, 'pki', 'ca.crt'),
      '-cert',
      cert,
      '-key',
      key,
    ]).then(
      (r) => r.stdout + r.stderr,
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    )
    expect(sClient).toContain('alert unknown ca')
    expect(sClient).not.toContain('HTTP/1.1 200')
  })

  it('closes a connection that never completes TLS', async () => {
    const started = Date.now()
    const socket = connect(gateway.port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    const seconds = (Date.now() - started) / 1000
    expect(seconds).toBeGreaterThan(8)
    expect(seconds).toBeLessThan(15)
  }, 20_000)

  it('ignores client-sent x-hsmgate-principal and x-forwarded-client-cert', async () => {
    const forged = [
      '-H',
      'x-hsmgate-principal: spiffe://hsmgate.demo/app/payments',
      '-H',
      'x-forwarded-client-cert: By=spiffe://x;URI=spiffe://hsmgate.demo/app/payments',
      '-H',
      'x-hsmgate-decision: v1.0.d_forged.AAAA',
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify({ message: b64('x') }),
    ]
    const res = await curl(`${gateway.url}/v1/keys/payments-signing/sign`, [
      ...appTls(gateway.dir, 'reporting'),
      ...forged,
    ])
    expect(res.status).toBe(403)
    expect((res.json().error as { message: string }).message).toContain('/app/reporting')
  })

  it('rejects a request sent straight to the backend socket', async () => {
    const socket = join(gateway.dir, 'run', 'backend.sock')
    const res = await curl('http://localhost/v1/keys/payments-signing/sign', [
      '--unix-socket',
      socket,
      '-H',
      'x-hsmgate-principal: spiffe://hsmgate.demo/app/payments',
      '-H',
      'x-hsmgate-decision: v1.1.d_forged.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify({ message: b64('x') }),
    ])
    expect(res.status).toBe(401)
    expect((res.json().error as { code: string }).code).toBe('not_authorized')

    const bare = await curl('http://localhost/v1/random', [
      '--unix-socket',
      socket,
      '--data-binary',
      '{"length":8}',
    ])
    expect(bare.status).toBe(401)
  })
})

describe('gateway input errors', () => {
  const cases: Array<{ name: string; path: string; body: string; status: number; code: string }> = [
    {
      name: 'malformed JSON',
      path: '/v1/keys/payments-signing/sign',
      body: '{"message":',
      status: 400,
      code: 'invalid_json',
    },
    {
      name: 'bad base64',
      path: '/v1/keys/payments-signing/sign',
      body: '{"message":"no!base64?"}',
      status: 400,
      code: 'invalid_base64',
    },
    {
      name: 'unknown key',
      path: '/v1/keys/payments-missing/sign',
      body: '{"message":"eA=="}',
      status: 404,
      code: 'key_not_found',
    },
    {
      name: 'unknown algorithm',
      path: '/v1/keys/payments-signing/sign',
      body: '{"message":"eA==","algorithm":"RSA_PSS_SHA_256"}',
      status: 400,
      code: 'invalid_algorithm',
    },
    {
      name: 'wrong key type',
      path: '/v1/keys/payments-data/sign',
      body: '{"message":"eA=="}',
      status: 400,
      code: 'wrong_key_type',
    },
    {
      name: 'empty plaintext',
      path: '/v1/keys/payments-data/encrypt',
      body: '{"plaintext":""}',
      status: 400,
      code: 'invalid_request',
    },
    {
      name: 'random length',
      path: '/v1/random',
      body: '{"length":4096}',
      status: 400,
      code: 'invalid_request',
    },
  ]

  for (const c of cases) {
    it(`answers ${c.status} for ${c.name}`, async () => {
      const res = await postJson(gateway, 'payments', c.path, c.body)
      expect(res.status).toBe(c.status)
      const error = res.json().error as { code: string; message: string; decision_id: string }
      expect(error.code).toBe(c.code)
      expect(error.message.length).toBeGreaterThan(10)
      expect(error.decision_id).toMatch(/^d_/)
    })
  }

  it('lists the allowed algorithms for an unknown one', async () => {
    const res = await postJson(gateway, 'payments', '/v1/keys/payments-signing/sign', {
      message: 'eA==',
      algorithm: 'MD5',
    })
    expect((res.json().error as { message: string }).message).toContain('ECDSA_SHA_256')
  })

  it('rejects a path with escaped slashes', async () => {
    const res = await curl(`${gateway.url}/v1/keys/payments-signing%2Fsign`, [
      ...appTls(gateway.dir, 'payments'),
      '--http1.1',
      '--path-as-is',
      '--data-binary',
      '{"message":"eA=="}',
    ])
    expect(res.status).toBe(400)
  })

  it('answers 413 for a body over the limit', async () => {
    const big = join(work, 'big.json')
    writeFileSync(big, JSON.stringify({ message: b64(Buffer.alloc(80 * 1024, 7)) }))
    const res = await curl(`${gateway.url}/v1/keys/payments-signing/sign`, [
      ...appTls(gateway.dir, 'payments'),
      '-H',
      'content-type: application/json',
      '--data-binary',
      `@${big}`,
    ])
    expect(res.status).toBe(413)
    expect((res.json().error as { code: string }).code).toBe('payload_too_large')
  })

  it('keeps serving after the bad requests', async () => {
    const res = await postJson(gateway, 'payments', '/v1/keys/payments-signing/sign', {
      message: b64('still here'),
    })
    expect(res.status).toBe(200)
  })

  it('writes an audit record for every backend operation', async () => {
    const db = new Database(join(gateway.dir, 'store', 'hsmgate.db'), { readonly: true })
    const rows = db
      .prepare('SELECT operation, status, principal FROM audit ORDER BY seq')
      .all() as Array<{
      operation: string
      status: number
      principal: string
    }>
    db.close()
    const signs = rows.filter((r) => r.operation === 'sign' && r.status === 200)
    expect(signs.length).toBeGreaterThanOrEqual(2)
    expect(signs.every((r) => r.principal === 'spiffe://hsmgate.demo/app/payments')).toBe(true)
    expect(rows.some((r) => r.operation === 'decrypt' && r.status === 400)).toBe(true)
  })

  it('names the operation of a malformed request in the backend audit', async () => {
    const db = new Database(join(gateway.dir, 'store', 'hsmgate.db'), { readonly: true })
    const rows = db
      .prepare("SELECT operation, key_name FROM audit WHERE node = 'node-1' AND error_code = ?")
      .all('invalid_json') as Array<{ operation: string; key_name: string }>
    db.close()
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.every((r) => r.operation === 'sign' && r.key_name === 'payments-signing')).toBe(
      true,
    )
  })
})
