import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import { CliError, EXIT } from '../cli-error.js'

/** mTLS material and base URL for calls of the approvals API. */
export interface ApiClient {
  readonly gateway: string
  readonly ca: string
  readonly cert: string
  readonly key: string
}

const TIMEOUT_MS = 30_000
const MAX_RESPONSE_BYTES = 1024 * 1024

/** Reads the TLS files named by --ca, --cert and --key; a missing option is a usage error. */
export function apiClient(values: {
  gateway?: string
  ca?: string
  cert?: string
  key?: string
}): ApiClient {
  const read = (path: string | undefined, option: string): string => {
    if (path === undefined) throw new CliError(`${option} FILE is required`, EXIT.usage)
    try {
      return readFileSync(path, 'utf8')
    } catch (error) {
      throw new CliError(`${option} ${path}: ${(error as Error).message}`, EXIT.usage)
    }
  }
  const gateway = values.gateway
  if (gateway === undefined || !/^https:\/\/[^/]+\/?$/.test(gateway)) {
    throw new CliError(`--gateway must be an https:// base URL, got '${gateway ?? ''}'`, EXIT.usage)
  }
  return {
    gateway: gateway.replace(/\/$/, ''),
    ca: read(values.ca, '--ca'),
    cert: read(values.cert, '--cert'),
    key: read(values.key, '--tls-key'),
  }
}

/**
 * Calls the gateway with the client certificate and returns the JSON response. An error
 * response becomes a CliError with the gateway's code and message.
 */
export function callApi(
  client: ApiClient,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(
      `${client.gateway}${path}`,
      {
        method,
        ca: client.ca,
        cert: client.cert,
        key: client.key,
        timeout: TIMEOUT_MS,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('response is larger than 1 MiB'))
          else chunks.push(chunk)
        })
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: Record<string, unknown> = {}
          try {
            json = JSON.parse(text) as Record<string, unknown>
          } catch {
            json = {}
          }
          const status = res.statusCode ?? 0
          if (status >= 200 && status < 300) return resolve(json)
          const error = (json.error ?? {}) as { code?: unknown; message?: unknown }
          const code = typeof error.code === 'string' ? error.code : `http_${status}`
          const message = typeof error.message === 'string' ? error.message : text.slice(0, 200)
          reject(new CliError(`gateway responded ${status} ${code}: ${message}`))
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`request timed out after ${TIMEOUT_MS} ms`)))
    req.on('error', (error) =>
      reject(
        error instanceof CliError
          ? error
          : new CliError(`gateway request failed: ${error.message}`),
      ),
    )
    req.end(payload)
  })
}
