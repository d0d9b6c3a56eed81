import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseArgs } from 'node:util'
import { loadConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { createEmbeddedSetup } from '../init/embedded-setup.js'
import { gatewayUrl } from '../up/curl-example.js'
import { startGateway } from '../up/gateway.js'
import { parsePort } from './init.js'
import { stopSignal } from './up.js'

const run = promisify(execFile)

export const demoHelp = `Usage: hsmgate demo [options]

Creates an embedded setup in DIR unless one exists, starts the gateway, signs a message as
the demo application 'payments' with curl, verifies the signature with openssl against the
public key read from the HSM, and keeps the gateway running until Ctrl-C.

Options:
  --dir DIR           Directory of the setup. Default: ./var
  --port PORT         TCP port of the TLS listener when a new setup is created. Default: 8443
  --admin-port PORT   TCP port of Envoy's admin interface when a new setup is created.
                      Default: 9901
`

/** `hsmgate demo`: one command from a fresh checkout to a verified HSM signature. */
export async function runDemo(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', default: 'var' },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
    },
  })
  const stop = stopSignal()
  const configPath = join(values.dir, 'hsmgate.yaml')
  if (!existsSync(configPath)) {
    await createEmbeddedSetup({
      dir: values.dir,
      force: false,
      listenAddress: '127.0.0.1',
      listenPort: parsePort(values.port, '--port', 8443),
      adminPort: parsePort(values['admin-port'], '--admin-port', 9901),
      logger,
    })
  }
  const config = loadConfig(configPath)
  const gateway = await startGateway(config, logger)
  try {
    await showSignedRequest(config.dir, gatewayUrl(config))
  } catch (error) {
    await gateway.stop()
    throw error
  }
  process.stdout.write(`\ngateway running at ${gatewayUrl(config)}; stop with Ctrl-C\n`)
  await Promise.race([stop, gateway.fatal])
  await gateway.stop()
  return EXIT.ok
}

async function showSignedRequest(dir: string, url: string): Promise<void> {
  const app = join(dir, 'apps', 'payments')
  const work = mkdtempSync(join(tmpdir(), 'hsmgate-demo-'))
  try {
    const message = join(work, 'message.txt')
    writeFileSync(message, 'transfer 100 EUR to account 42\n')
    const tls = [
      '--cacert',
      `${app}/ca.crt`,
      '--cert',
      `${app}/client.crt`,
      '--key',
      `${app}/client.key`,
    ]
    const payload = JSON.stringify({
      message: Buffer.from('transfer 100 EUR to account 42\n').toString('base64'),
    })

    const signCmd = ['-sS', '--fail-with-body', ...tls, '-H', 'content-type: application/json']
    const signed = await run('curl', [
      ...signCmd,
      '-d',
      payload,
      `${url}/v1/keys/payments-signing/sign`,
    ])
    const signature = JSON.parse(signed.stdout) as { signature: string; decision_id: string }
    process.stdout.write(`$ curl ... ${url}/v1/keys/payments-signing/sign\n${signed.stdout}\n`)

    const described = await run('curl', [
      '-sS',
      '--fail-with-body',
      ...tls,
      `${url}/v1/keys/payments-signing`,
    ])
    const publicKey = (JSON.parse(described.stdout) as { public_key_pem: string }).public_key_pem
    writeFileSync(join(work, 'public.pem'), publicKey)
    writeFileSync(join(work, 'signature.der'), Buffer.from(signature.signature, 'base64'))

    const verifyArgs = [
      'dgst',
      '-sha256',
      '-verify',
      'public.pem',
      '-signature',
      'signature.der',
      'message.txt',
    ]
    const verified = await run('openssl', verifyArgs, { cwd: work })
    process.stdout.write(`$ openssl ${verifyArgs.join(' ')}\n${verified.stdout}`)
  } catch (error) {
    throw new CliError(`demo request failed: ${(error as Error).message}`, EXIT.failure, {
      cause: error,
    })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
