import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { createEmbeddedSetup } from '../init/embedded-setup.js'
import { appTlsArgs, gatewayUrl, shellCommand, signCurlArgs } from '../up/curl-example.js'
import { startGateway } from '../up/gateway.js'
import { parsePort, parseStatsPort } from './init.js'
import { stopSignal } from './up.js'
import { DEMO_TRUST_DOMAIN } from '../init/demo-files.js'

const run = promisify(execFile)
const MESSAGE = 'transfer 100 EUR to account 42\n'

export const demoHelp = `Usage: hsmgate demo [options]

Creates an embedded setup in DIR unless one exists, starts the gateway, signs a message as
the demo application 'payments' with curl, verifies the signature with openssl against the
public key read from the HSM, and keeps the gateway running until Ctrl-C. The files of the
verification stay in DIR/demo so the printed commands can be run again.

Options:
  --dir DIR           Directory of the setup. Default: ./var
  --port PORT         TCP port of the TLS listener when a new setup is created. Default: 8443
  --stats-port PORT   TCP port on 127.0.0.1 that serves only GET /stats/prometheus and GET
                      /ready of Envoy, when a new setup is created. Default: 9901
  --admin-port PORT   Earlier name of --stats-port.
  --enroll-port PORT  TCP port of the enrollment listener when a new setup is created.
                      Default: 8444
`

/** `hsmgate demo`: one command from a fresh checkout to a verified HSM signature. */
export async function runDemo(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', default: 'var' },
      port: { type: 'string' },
      'stats-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'enroll-port': { type: 'string' },
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
      statsPort: parseStatsPort(values),
      enrollPort: parsePort(values['enroll-port'], '--enroll-port', 8444),
      trustDomain: DEMO_TRUST_DOMAIN,
      demoApps: true,
      logger,
    })
  }
  const config = loadConfig(configPath)
  const gateway = await startGateway(config, logger, stop.signal)
  try {
    await showSignedRequest(config)
  } catch (error) {
    await gateway.stop()
    throw error
  }
  process.stdout.write(`\ngateway running at ${gatewayUrl(config)}; stop with Ctrl-C\n`)
  await Promise.race([stop.stopped, gateway.fatal])
  await gateway.stop()
  return EXIT.ok
}

/** Runs a command, printing it first and its output after it. */
async function show(args: string[], cwd?: string): Promise<string> {
  process.stdout.write(`$ ${shellCommand(args)}\n`)
  const { stdout } = await run(args[0]!, args.slice(1), { cwd })
  process.stdout.write(stdout.endsWith('\n') ? stdout : `${stdout}\n`)
  return stdout
}

async function showSignedRequest(config: LoadedConfig): Promise<void> {
  const work = join(config.dir, 'demo')
  mkdirSync(work, { recursive: true })
  const file = (name: string): string => join(work, name)
  try {
    writeFileSync(file('message.txt'), MESSAGE)
    const signed = await show(signCurlArgs(config, 'payments', MESSAGE))
    const signature = (JSON.parse(signed) as { signature: string }).signature
    writeFileSync(file('signature.der'), Buffer.from(signature, 'base64'))

    const keyUrl = `${gatewayUrl(config)}/v1/keys/payments-signing`
    const described = await show(['curl', '-sS', ...appTlsArgs(config, 'payments'), keyUrl])
    const publicKey = (JSON.parse(described) as { public_key_pem: string }).public_key_pem
    writeFileSync(file('public.pem'), publicKey)

    await show([
      'openssl',
      'dgst',
      '-sha256',
      '-verify',
      file('public.pem'),
      '-signature',
      file('signature.der'),
      file('message.txt'),
    ])
  } catch (error) {
    throw new CliError(`demo request failed: ${(error as Error).message}`, EXIT.failure, {
      cause: error,
    })
  }
}
