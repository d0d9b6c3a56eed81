import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import * as grpc from '@grpc/grpc-js'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CheckResponse } from './check.js'
import { verifyDecision } from './decision-header.js'
import { findProjectRoot, loadAuthzProtos } from './protos.js'
import { SocketInUseError, startAuthzServer, type AuthzServer } from './server.js'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { SqliteStore } from '../store/sqlite-store.js'
import { application, keyVersion } from '../test/helpers/policy-fixtures.js'

const trustDomain = 'hsmgate.demo'
const payments = 'spiffe://hsmgate.demo/app/payments'
const reporting = 'spiffe://hsmgate.demo/app/reporting'
/** Text placed in request bodies to check that it never reaches the log. */
const BODY_MARKER = 'BODY-CONTENT-MUST-NOT-BE-LOGGED'

const secret = randomBytes(32)
const logLines: Record<string, unknown>[] = []
const certificates: Record<string, string> = {}
let dir: string
let socketPath: string
let server: AuthzServer
let client: grpc.Client
let store: SqliteStore

function makeCertificate(name: string, uri: string): string {
  const key = join(dir, `${name}.key`)
  const pem = join(dir, `${name}.pem`)
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', key, '-out', pem, '-days', '1', '-subj', `/CN=${name}`])
      .concat(['-addext', `subjectAltName=URI:${uri}`]),
    { stdio: 'pipe', timeout: 10_000 },
  )
  return encodeURIComponent(readFileSync(pem, 'utf8'))
}

function captureLogger(): pino.Logger {
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      callback()
    },
  })
  return pino({ level: 'info' }, stream)
}

interface HttpInput {
  certificate?: string
  method: string
  path: string
  headers?: Record<string, string>
  body?: Buffer
}

function checkRequest(input: HttpInput): object {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '127.0.0.1', port_value: 40000 } },
        certificate: input.certificate ?? '',
      },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 8443 } } },
      request: {
        http: {
          id: 'request-1',
          method: input.method,
          path: input.path,
          host: 'hsmgate.local',
          scheme: 'https',
          protocol: 'HTTP/2',
          headers: { ':method': input.method, ':path': input.path, ...input.headers },
          size: String(input.body?.length ?? 0),
          raw_body: input.body ?? Buffer.alloc(0),
        },
      },
    },
  }
}

function callCheck(input: HttpInput): Promise<CheckResponse & { http_response?: string }> {
  return new Promise((resolve, reject) => {
    const method = (client as unknown as Record<string, grpc.requestCallback<unknown>>)['Check']
    const deadline = new Date(Date.now() + 5_000)
    ;(method as unknown as (...args: unknown[]) => void).call(
      client,
      checkRequest(input),
      { deadline },
      (error: grpc.ServiceError | null, response: CheckResponse) =>
        error ? reject(error) : resolve(response),
    )
  })
}

function headerValue(response: CheckResponse, name: string): string | undefined {
  const headers = response.ok_response?.headers ?? response.denied_response?.headers ?? []
  return headers.find((h) => h.header.key === name)?.header.value
}

function errorBody(response: CheckResponse): {
  code: string
  message: string
  decision_id: string
} {
  return JSON.parse(response.denied_response?.body ?? '{}').error
}

function decisionLogs(decisionId: string | undefined): Record<string, unknown>[] {
  return logLines.filter((l) => l.decision_id === decisionId)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-authz-'))
  socketPath = join(dir, 'run', 'authz.sock')
  certificates.payments = makeCertificate('payments', payments)
  certificates.reporting = makeCertificate('reporting', reporting)
  certificates.outsider = makeCertificate('outsider', 'spiffe://evil.example/app/payments')
  mkdirSync(join(dir, 'policies'))
  for (const [name, text] of Object.entries(starterPolicies())) {
    writeFileSync(join(dir, 'policies', name), text)
  }
  store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
  await store.putApplication(application('payments'))
  await store.putApplication(application('reporting'))
  await store.putKeyVersion(keyVersion('payments-signing', 'payments'))
  server = await startAuthzServer({
    socketPath,
    policyDir: join(dir, 'policies'),
    store,
    nodeId: 'node-1',
    decisionSecret: secret,
    trustDomain,
    logger: captureLogger(),
  })
  const { authorization } = loadAuthzProtos()
  client = new authorization(`unix:${socketPath}`, grpc.credentials.createInsecure())
}, 30_000)

afterAll(async () => {
  client?.close()
  await server?.close()
  await store?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('authz gRPC server', () => {
  it('allows a granted sign with a verifiable decision', async () => {
    const body = Buffer.from(`{"data":"${BODY_MARKER}"}`)
    const path = '/v1/keys/payments-signing/sign'
    const response = await callCheck({
      certificate: certificates.payments,
      method: 'POST',
      path,
      body,
    })

    expect(response.status.code).toBe(0)
    expect(response.http_response).toBe('ok_response')
    const headers = response.ok_response?.headers ?? []
    expect(headers.map((h) => h.header.key)).toEqual([
      'x-hsmgate-principal',
      'x-hsmgate-decision',
      'x-hsmgate-decision-id',
    ])
    for (const header of headers) {
      expect(header.append_action).toBe(2)
      expect(header.append).toEqual({ value: false })
    }
    expect(headerValue(response, 'x-hsmgate-principal')).toBe(payments)
    expect(response.ok_response?.headers_to_remove).toEqual([])

    const decisionId = headerValue(response, 'x-hsmgate-decision-id')
    const verified = verifyDecision(
      secret,
      headerValue(response, 'x-hsmgate-decision'),
      { principal: payments, method: 'POST', path, body },
      Date.now(),
      5_000,
    )
    expect(verified).toMatchObject({ ok: true, decisionId, sourceAddress: '127.0.0.1' })
    expect(verified.ok && verified.certSerial).toMatch(/^[0-9a-f]+$/)
  })

  it('binds the decision to the body', async () => {
    const path = '/v1/keys/payments-signing/sign'
    const response = await callCheck({
      certificate: certificates.payments,
      method: 'POST',
      path,
      body: Buffer.from('original'),
    })
    const verified = verifyDecision(
      secret,
      headerValue(response, 'x-hsmgate-decision'),
      { principal: payments, method: 'POST', path, body: Buffer.from('changed') },
      Date.now(),
      5_000,
    )
    expect(verified.ok).toBe(false)
  })

  it('overwrites a client-sent principal header and removes other reserved ones', async () => {
    const response = await callCheck({
      certificate: certificates.payments,
      method: 'GET',
      path: '/v1/keys',
      headers: {
        'x-hsmgate-principal': 'spiffe://hsmgate.demo/app/admin',
        'x-hsmgate-decision': 'v1.0.d_forged.AAAA',
        'x-hsmgate-role': 'admin',
        'x-hsmgate-': 'empty suffix',
        'x-request-id': 'keep-me',
      },
    })
    expect(response.http_response).toBe('ok_response')
    expect(headerValue(response, 'x-hsmgate-principal')).toBe(payments)
    expect(headerValue(response, 'x-hsmgate-decision')).not.toBe('v1.0.d_forged.AAAA')
    // Envoy removes headers_to_remove after setting headers, so the overwritten ones stay off it.
    expect(response.ok_response?.headers_to_remove).toEqual(['x-hsmgate-', 'x-hsmgate-role'])
  })

  it('ignores a client-sent principal header when deciding', async () => {
    const response = await callCheck({
      certificate: certificates.reporting,
      method: 'POST',
      path: '/v1/keys/payments-signing/sign',
      headers: { 'x-hsmgate-principal': payments },
    })
    expect(response.denied_response?.status.code).toBe(403)
    expect(errorBody(response).message).toContain(reporting)
  })

  it('denies an ungranted key with 403 and a JSON body', async () => {
    const response = await callCheck({
      certificate: certificates.reporting,
      method: 'POST',
      path: '/v1/keys/payments-signing/sign',
      body: Buffer.from(BODY_MARKER),
    })

    expect(response.status.code).toBe(7)
    expect(response.http_response).toBe('denied_response')
    expect(response.ok_response).toBeFalsy()
    expect(response.denied_response?.status.code).toBe(403)
    expect(headerValue(response, 'content-type')).toBe('application/json')
    const decisionId = headerValue(response, 'x-hsmgate-decision-id')
    expect(decisionId).toMatch(/^d_[A-Za-z0-9_-]{22}$/)
    expect(errorBody(response)).toEqual({
      code: 'forbidden',
      message:
        `principal ${reporting} may not sign with key 'payments-signing': ` +
        'no policy permits this request (policy default-deny)',
      decision_id: decisionId,
      policy_ids: ['default-deny'],
    })
    expect(response.denied_response?.body).not.toContain('resource.owner')
  })

  it('denies a missing certificate with 401', async () => {
    const response = await callCheck({ method: 'GET', path: '/v1/keys' })
    expect(response.status.code).toBe(7)
    expect(response.denied_response?.status.code).toBe(401)
    expect(errorBody(response).code).toBe('unauthenticated')
  })

  it('denies another trust domain with 401 and logs the reason', async () => {
    const response = await callCheck({
      certificate: certificates.outsider,
      method: 'GET',
      path: '/v1/keys',
    })
    expect(response.denied_response?.status.code).toBe(401)
    expect(response.denied_response?.body).not.toContain('evil.example')
    const [line] = decisionLogs(headerValue(response, 'x-hsmgate-decision-id'))
    expect(line?.reason).toBe('trust_domain_mismatch')
    expect(String(line?.detail)).toContain('evil.example')
  })

  it('denies an unknown route with 404', async () => {
    const response = await callCheck({
      certificate: certificates.payments,
      method: 'DELETE',
      path: '/v1/keys/payments-signing',
    })
    expect(response.denied_response?.status.code).toBe(404)
    expect(errorBody(response).code).toBe('unknown_route')
  })

  it('denies an invalid key name with 400', async () => {
    const response = await callCheck({
      certificate: certificates.payments,
      method: 'POST',
      path: '/v1/keys/Payments_Key/sign',
    })
    expect(response.denied_response?.status.code).toBe(400)
    expect(errorBody(response).code).toBe('invalid_key_name')
  })

  it('logs every decision once without body content', async () => {
    const ids: (string | undefined)[] = []
    for (const certificate of [certificates.payments, certificates.reporting]) {
      const response = await callCheck({
        certificate,
        method: 'POST',
        path: '/v1/keys/payments-signing/encrypt',
        body: Buffer.from(BODY_MARKER),
      })
      ids.push(headerValue(response, 'x-hsmgate-decision-id'))
    }
    const [allow, deny] = ids.map((id) => decisionLogs(id))
    expect(allow).toHaveLength(1)
    expect(deny).toHaveLength(1)
    expect(allow?.[0]).toMatchObject({
      level: 30,
      principal: payments,
      operation: 'encrypt',
      key: 'payments-signing',
      result: 'allow',
      reason: 'an application may use only the keys it owns',
      policy_ids: ['own-keys'],
    })
    expect(deny?.[0]).toMatchObject({
      level: 30,
      principal: reporting,
      operation: 'encrypt',
      key: 'payments-signing',
      result: 'deny',
      reason: 'no policy permits this request',
      policy_ids: ['default-deny'],
    })
    expect(JSON.stringify(logLines)).not.toContain(BODY_MARKER)
  })

  it('audits every decision under its decision id before answering', async () => {
    const ids: (string | undefined)[] = []
    for (const certificate of [certificates.payments, certificates.reporting, undefined]) {
      const response = await callCheck({
        certificate,
        method: 'POST',
        path: '/v1/keys/payments-signing/sign',
        body: Buffer.from(BODY_MARKER),
      })
      ids.push(headerValue(response, 'x-hsmgate-decision-id'))
    }
    const records = await store.auditRecords('node-1/authz')
    const [allow, deny, anonymous] = ids.map((id) => records.find((r) => r.decisionId === id))
    expect(allow).toMatchObject({ principal: payments, outcome: 'ok', policyIds: ['own-keys'] })
    expect(allow?.sourceAddress).toBe('127.0.0.1')
    expect(allow?.certSerial).toMatch(/^[0-9a-f]+$/)
    expect(deny).toMatchObject({
      principal: reporting,
      outcome: 'error',
      status: 403,
      errorCode: 'forbidden',
      policyIds: ['default-deny'],
      reason: 'no policy permits this request',
    })
    expect(anonymous).toMatchObject({ principal: '', status: 401, reason: 'certificate_missing' })
    expect(JSON.stringify(records)).not.toContain(BODY_MARKER)
  })

  it('denies an application that is not registered', async () => {
    const stranger = makeCertificate('stranger', 'spiffe://hsmgate.demo/app/stranger')
    const response = await callCheck({ certificate: stranger, method: 'GET', path: '/v1/keys' })
    expect(response.denied_response?.status.code).toBe(403)
    const [line] = decisionLogs(headerValue(response, 'x-hsmgate-decision-id'))
    expect(line?.reason).toBe('unknown_application')
  })

  it('denies a suspended application at once, without a policy reload', async () => {
    await store.putApplication(application('reporting', { suspended: true }))
    try {
      const response = await callCheck({
        certificate: certificates.reporting,
        method: 'GET',
        path: '/v1/keys',
      })
      expect(response.denied_response?.status.code).toBe(403)
      expect(errorBody(response).message).toContain('the application is suspended')
    } finally {
      await store.putApplication(application('reporting'))
    }
  })

  it('answers grpc.health.v1 Check', async () => {
    const { health } = loadAuthzProtos()
    const healthClient = new health(`unix:${socketPath}`, grpc.credentials.createInsecure())
    const call = (service: string): Promise<{ status: number }> =>
      new Promise((resolve, reject) => {
        const check = (healthClient as unknown as Record<string, (...args: unknown[]) => void>)[
          'Check'
        ] as (...args: unknown[]) => void
        check.call(
          healthClient,
          { service },
          { deadline: new Date(Date.now() + 5_000) },
          (error: grpc.ServiceError | null, response: { status: number }) =>
            error ? reject(error) : resolve(response),
        )
      })
    try {
      expect(await call('')).toEqual({ status: 1 })
      expect(await call('envoy.service.auth.v3.Authorization')).toEqual({ status: 1 })
      await expect(call('other.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    } finally {
      healthClient.close()
    }
  })

  it('creates the socket with mode 0600', async () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o600)
  })

  it('refuses a socket that another server is using', async () => {
    await expect(
      startAuthzServer({
        socketPath,
        policyDir: join(dir, 'policies'),
        store,
        nodeId: 'node-1',
        decisionSecret: secret,
        trustDomain,
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toBeInstanceOf(SocketInUseError)
  })
})

describe('startAuthzServer lifecycle', () => {
  it('replaces a stale socket and removes it on close', async () => {
    const stale = join(dir, 'stale.sock')
    await leaveStaleSocket(stale)
    expect(existsSync(stale)).toBe(true)

    const second = await startAuthzServer({
      socketPath: stale,
      policyDir: join(dir, 'policies'),
      store,
      nodeId: 'node-1',
      decisionSecret: secret,
      trustDomain,
      logger: pino({ level: 'silent' }),
    })
    await second.close()
    expect(existsSync(stale)).toBe(false)
  })

  it('refuses a path that is not a socket', async () => {
    const file = join(dir, 'regular-file')
    writeFileSync(file, 'not a socket')
    await expect(
      startAuthzServer({
        socketPath: file,
        policyDir: join(dir, 'policies'),
        store,
        nodeId: 'node-1',
        decisionSecret: secret,
        trustDomain,
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toThrow('is not a socket')
    expect(readFileSync(file, 'utf8')).toBe('not a socket')
  })
})

describe('findProjectRoot', () => {
  it('finds the same root from the source and dist folders', async () => {
    const root = findProjectRoot()
    expect(existsSync(join(root, 'authz', 'proto'))).toBe(true)
    expect(findProjectRoot(join(root, 'dist', 'authz'))).toBe(root)
  })
})

/** Starts a child process that listens on `path` and kills it with SIGKILL, leaving the file. */
async function leaveStaleSocket(path: string): Promise<void> {
  const script = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('listening'))`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not listen within 5 s')), 5_000)
    child.stdout.once('data', () => {
      clearTimeout(timer)
      resolve()
    })
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}
