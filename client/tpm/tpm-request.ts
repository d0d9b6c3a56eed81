import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GatewayError, postJson } from '../gateway-client.js'
import { runTool } from './tpm-tools.js'

/** Maximum time of one request to the gateway, connection and response included. */
const REQUEST_TIMEOUT_S = 30

/**
 * OpenSSL configuration that lets curl use a TSS2 key file: the tpm2 and default providers,
 * tpm2 preferred, and the random generator pinned to the default provider because the tpm2
 * provider's generator is slow and the TLS handshake draws from it often.
 */
export const TPM_OPENSSL_CONF = `openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
alg_section = evp_properties
random = random_sect
[provider_sect]
default = default_sect
tpm2 = tpm2_sect
[default_sect]
activate = 1
[tpm2_sect]
activate = 1
[evp_properties]
default_properties = ?provider=tpm2
[random_sect]
properties = provider=default
seed_properties = provider=default
`

/**
 * Returns a new nonce from the gateway's enrollment listener for TPM2_Certify. An enrolling agent
 * passes its enrollment token, so that its nonces do not count against the per-address limit.
 * The gateway only checks the token there and does not use it up.
 */
export async function fetchNonce(
  enrollGateway: string,
  caPem: string,
  token?: string,
): Promise<Buffer> {
  const answer = await postJson(
    new URL('/v1/enroll/nonce', enrollGateway).toString(),
    token === undefined ? {} : { token },
    { ca: caPem },
  )
  if (typeof answer.nonce !== 'string') throw new Error('the gateway response contains no nonce')
  return Buffer.from(answer.nonce, 'base64')
}

/**
 * Sends a JSON body with POST over mutual TLS whose client key is in the TPM. Node's TLS cannot
 * sign with a TPM key, so curl does it through the tpm2-openssl provider. An HTTP error becomes
 * a GatewayError as in postJson; a curl failure rejects with curl's message.
 */
export async function postJsonWithTpmKey(
  url: string,
  body: unknown,
  tls: { ca: string; cert: string; keyPem: string },
  tcti: string,
): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-tpm-tls-'))
  try {
    const file = (name: string, text: string): string => {
      writeFileSync(join(dir, name), text, { mode: 0o600 })
      return join(dir, name)
    }
    const args = [
      '--silent',
      '--show-error',
      '--max-time',
      String(REQUEST_TIMEOUT_S),
      '--cacert',
      file('ca.pem', tls.ca),
      '--cert',
      file('cert.pem', tls.cert),
      '--key',
      file('key.pem', tls.keyPem),
      '--header',
      'content-type: application/json',
      '--data-binary',
      '@-',
      '--output',
      join(dir, 'response'),
      '--write-out',
      '%{http_code}',
      url,
    ]
    const env = { OPENSSL_CONF: file('openssl.cnf', TPM_OPENSSL_CONF) }
    const input = Buffer.from(JSON.stringify(body))
    const { stdout } = await runTool('curl', args, tcti, input, env)
    const status = Number(stdout.toString('utf8').trim())
    return settle(status, readFileSync(join(dir, 'response'), 'utf8'))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function settle(status: number, text: string): Record<string, unknown> {
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    json = {}
  }
  if (status === 200) return json
  const error = (json.error ?? {}) as { code?: unknown; message?: unknown }
  const code = typeof error.code === 'string' ? error.code : `http_${status}`
  const message = typeof error.message === 'string' ? error.message : text.slice(0, 200)
  throw new GatewayError(status, code, `gateway responded ${status} ${code}: ${message}`)
}
