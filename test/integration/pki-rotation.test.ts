import { statSync } from 'node:fs'
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
import { envoyPid, getKept, keepAliveAgent, servedSerial, within } from '../helpers/tls-client.js'

// Real Envoy reading its serving certificate and CRL through SDS files that the crypto backend
// and `hsmgate certs` write; the CA key is in SoftHSM2. Nothing here restarts Envoy.

let gateway: TestGateway
// With TLS 1.2 the server's verdict on the client certificate is part of the handshake, so curl
// reports the alert rather than a broken pipe.
const TLS12 = ['--tls-max', '1.2']

beforeAll(async () => {
  const { dir, port } = await initGateway()
  gateway = await startUp(dir, port)
})

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

async function certs(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [CLI, 'certs', ...args, '--dir', gateway.dir],
    {
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
    },
  )
  return JSON.parse(stdout) as Record<string, unknown>
}

describe('serving certificate rotation', () => {
  it('serves a new certificate on new connections while an open one keeps working', async () => {
    const pid = envoyPid(gateway.dir)
    const agent = keepAliveAgent(gateway.dir, 'payments')
    try {
      const first = await getKept(agent, gateway.port, '/v1/keys')
      expect(first.status).toBe(200)
      const before = await servedSerial(gateway.port, gateway.dir)
      expect(before).toBe(first.serverSerial)

      const tlsDir = join(gateway.dir, 'run', 'tls')
      expect(statSync(tlsDir).mode & 0o777).toBe(0o700)
      expect(statSync(join(tlsDir, 'serving.json')).mode & 0o777).toBe(0o600)

      const renewed = await certs('renew-server')
      const expected = String(renewed.serial).toUpperCase()
      await within(5_000, async () => (await servedSerial(gateway.port, gateway.dir)) === expected)

      const again = await getKept(agent, gateway.port, '/v1/keys')
      expect(again).toMatchObject({ status: 200, reused: true, serverSerial: before })
      expect(envoyPid(gateway.dir)).toBe(pid)
    } finally {
      agent.destroy()
    }
  })
})

describe('revocation', () => {
  it('refuses a revoked certificate within 5 seconds, on new and open connections', async () => {
    const pid = envoyPid(gateway.dir)
    const agent = keepAliveAgent(gateway.dir, 'reporting')
    try {
      expect((await getKept(agent, gateway.port, '/v1/keys')).status).toBe(200)
      const ok = await curl(`${gateway.url}/v1/keys`, appTls(gateway.dir, 'reporting'))
      expect(ok.status).toBe(200)

      const result = await certs('revoke', '--app', 'reporting')
      expect(result.revoked).toHaveLength(1)

      // A request on the connection opened before the revocation: authz reads the store.
      const open = await getKept(agent, gateway.port, '/v1/keys')
      expect(open.reused).toBe(true)
      expect(open.status).toBe(401)
      expect(JSON.parse(open.body).error.code).toBe('certificate_revoked')

      // A new handshake: Envoy has the new CRL from the validation SDS file.
      const elapsed = await within(5_000, async () => {
        const attempt = await curl(`${gateway.url}/v1/keys`, [
          ...appTls(gateway.dir, 'reporting'),
          ...TLS12,
        ]).then(
          () => '',
          (error: Error) => error.message,
        )
        return /certificate revoked/.test(attempt)
      })
      expect(elapsed).toBeLessThan(5_000)

      const other = await curl(`${gateway.url}/v1/keys`, appTls(gateway.dir, 'payments'))
      expect(other.status).toBe(200)
      expect(envoyPid(gateway.dir)).toBe(pid)
    } finally {
      agent.destroy()
    }
  })

  it('explains a revoke without a target and an unknown serial', async () => {
    await expect(certs('revoke')).rejects.toThrow(/exactly one of --serial SERIAL and --app NAME/)
    await expect(certs('revoke', '--serial', 'xyz')).rejects.toThrow(/--serial 'xyz' is not a hex/)
    await expect(certs('revoke', '--serial', '01ab')).rejects.toThrow(
      /no certificate with serial 01ab/,
    )
  })
})
