import { request } from 'node:https'
import { withTlsHint } from './tls-hint.js'

/** Maximum time of one request to the gateway, connection and response included. */
const REQUEST_TIMEOUT_MS = 30_000
const MAX_RESPONSE_BYTES = 1024 * 1024

/** TLS material for one request: the gateway's CA, and the client certificate when there is one. */
export interface ClientTls {
  readonly ca: string
  readonly cert?: string
  readonly key?: string
}

/** An error response of the gateway, with the code and message from its JSON body. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'GatewayError'
  }

  /** Server errors and rate limits may pass; the other refusals repeat on retry. */
  get transient(): boolean {
    return this.status >= 500 || this.status === 429
  }
}

/**
 * Sends a JSON body with POST over TLS and returns the JSON response. An HTTP error response
 * becomes a GatewayError, and a connection or TLS failure rejects with Node's error.
 */
export function postJson(
  url: string,
  body: unknown,
  tls: ClientTls,
): Promise<Record<string, unknown>> {
  const payload = Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        timeout: REQUEST_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_RESPONSE_BYTES)
            req.destroy(new Error('gateway response is larger than 1 MiB'))
          else chunks.push(chunk)
        })
        res.on('end', () => settle(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')))
      },
    )
    const settle = (status: number, text: string): void => {
      let json: Record<string, unknown> = {}
      try {
        json = JSON.parse(text) as Record<string, unknown>
      } catch {
        json = {}
      }
      if (status === 200) return resolve(json)
      const error = (json.error ?? {}) as { code?: unknown; message?: unknown }
      const code = typeof error.code === 'string' ? error.code : `http_${status}`
      const message = typeof error.message === 'string' ? error.message : text.slice(0, 200)
      reject(new GatewayError(status, code, `gateway responded ${status} ${code}: ${message}`))
    }
    req.on('timeout', () =>
      req.destroy(new Error(`gateway request timed out after ${REQUEST_TIMEOUT_MS} ms`)),
    )
    req.on('error', (error) =>
      reject(withTlsHint(error, new URL(url).pathname === '/v1/enroll' ? 'enroll' : 'mtls')),
    )
    req.end(payload)
  })
}
