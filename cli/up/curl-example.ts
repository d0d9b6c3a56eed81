import { relative } from 'node:path'
import type { LoadedConfig } from '../../config/load.js'
import { localAddress } from './readiness.js'

function shown(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel.startsWith('..') ? path : rel
}

/** The gateway's base URL as clients on this machine reach it. */
export function gatewayUrl(config: LoadedConfig): string {
  const host = localAddress(config)
  return `https://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`
}

/** A curl command that signs a message as the demo application `app`. */
export function curlExample(config: LoadedConfig, app: string): string {
  const dir = `${config.dir}/apps/${app}`
  return [
    'curl -sS',
    `--cacert ${shown(`${dir}/ca.crt`)}`,
    `--cert ${shown(`${dir}/client.crt`)}`,
    `--key ${shown(`${dir}/client.key`)}`,
    `-H 'content-type: application/json'`,
    `-d '{"message":"aGVsbG8gaHNtZ2F0ZQ=="}'`,
    `${gatewayUrl(config)}/v1/keys/${app}-signing/sign`,
  ].join(' ')
}
