import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import type { LoadedConfig } from '../../config/load.js'

/** Returns the address that clients on this machine use for the listener. */
export function localAddress(config: LoadedConfig): string {
  const address = config.listen.address
  if (address === '0.0.0.0') return '127.0.0.1'
  if (address === '::') return '::1'
  return address
}

/**
 * Sends GET /v1/health through Envoy with the probe's client certificate, so the answer has
 * passed TLS, ext_authz, the backend and an HSM call. Resolves with the HTTP status, or
 * rejects on a connection or TLS error.
 */
export function probeOnce(config: LoadedConfig, timeoutMs = 3_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: localAddress(config),
        port: config.listen.port,
        path: '/v1/health',
        method: 'GET',
        ca: readFileSync(config.tls.trust_bundle),
        cert: readFileSync(config.probe.cert),
        key: readFileSync(config.probe.key),
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/**
 * Repeats the probe until it answers 200 or `deadlineMs` passes. Returns undefined when ready,
 * or the last failure.
 */
export async function waitUntilReady(
  config: LoadedConfig,
  deadlineMs: number,
  isAborted: () => boolean,
): Promise<string | undefined> {
  const end = Date.now() + deadlineMs
  let last = 'no attempt'
  while (Date.now() < end && !isAborted()) {
    try {
      const status = await probeOnce(config)
      if (status === 200) return undefined
      last = `health probe answered HTTP ${status}`
    } catch (error) {
      last = `health probe failed: ${(error as Error).message}`
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return last
}
