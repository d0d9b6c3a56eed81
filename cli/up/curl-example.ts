import { existsSync } from 'node:fs'
import type { LoadedConfig } from '../../config/load.js'
import { localAddress } from './readiness.js'

/** Returns the gateway's base URL as clients on this machine reach it. */
export function gatewayUrl(config: LoadedConfig): string {
  const host = localAddress(config)
  return `https://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`
}

/** Arguments that make curl trust the demo CA and present the demo application's certificate. */
export function appTlsArgs(config: LoadedConfig, app: string): string[] {
  const dir = `${config.dir}/apps/${app}`
  return ['--cacert', `${dir}/ca.crt`, '--cert', `${dir}/client.crt`, '--key', `${dir}/client.key`]
}

/** Quotes each argument for a POSIX shell where needed, so a printed command runs as shown. */
export function shellCommand(args: string[]): string {
  return args
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ')
}

/** Arguments of a curl command that signs a message as the demo application `app`. */
export function signCurlArgs(config: LoadedConfig, app: string, message: string): string[] {
  return [
    'curl',
    '-sS',
    ...appTlsArgs(config, app),
    '-H',
    'content-type: application/json',
    '-d',
    JSON.stringify({ message: Buffer.from(message).toString('base64') }),
    `${gatewayUrl(config)}/v1/keys/${app}-signing/sign`,
  ]
}

/** Returns a curl command, with absolute paths, that signs a message as the demo application `app`. */
export function curlExample(config: LoadedConfig, app: string): string {
  return shellCommand(signCurlArgs(config, app, 'hello hsmgate'))
}

/** The demo application whose sign command `hsmgate up` prints. */
const DEMO_APP = 'payments'

/**
 * Returns the lines that `hsmgate up` prints once ready: a curl command that signs as the demo
 * application when its CA certificate, client certificate and key exist in the setup, else the
 * commands that give an application host a client certificate.
 */
export function readyHint(config: LoadedConfig): string {
  const files = ['ca.crt', 'client.crt', 'client.key'].map(
    (name) => `${config.dir}/apps/${DEMO_APP}/${name}`,
  )
  if (files.every((file) => existsSync(file))) {
    return `try:\n  ${curlExample(config, DEMO_APP)}\n`
  }
  return (
    'no demo applications: register one with `hsmgate apps create` and `hsmgate keys create`,\n' +
    'then give its host a client certificate with `hsmgate tokens create` and\n' +
    '`hsmgate agent enroll` (docs/operations.md, "First install")\n'
  )
}
