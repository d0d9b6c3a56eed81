import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { DEMO_TRUST_DOMAIN } from '../init/demo-files.js'
import { createEmbeddedSetup } from '../init/embedded-setup.js'

/** SPIFFE trust domains as authz parses them from a certificate's URI SAN. */
const TRUST_DOMAIN_PATTERN = /^[a-z0-9.-]{1,255}$/

export const initHelp = `Usage: hsmgate init [options]

Creates an embedded gateway setup: two SoftHSM2 tokens forming a two-member cluster with PIN
files and the cluster key-encryption key, the SQLite store, a self-signed root CA whose key is
generated in the HSM, the readiness probe's certificate, the demo applications 'payments' and
'reporting' with client certificates and HSM keys, starter Cedar policies and hsmgate.yaml.
For a production setup, pass --no-demo-apps and --trust-domain, then replace the root with the
organisation's CA through 'hsmgate ca init' and 'hsmgate ca import'.

Options:
  --dir DIR           Directory for the setup. Default: ./var
  --force             Delete an existing setup in DIR first, HSM tokens and keys included.
  --listen ADDRESS    Address the gateway's TLS listener binds. Default: 127.0.0.1
  --port PORT         TCP port of the TLS listener. Default: 8443
  --stats-port PORT   TCP port on 127.0.0.1 that serves only GET /stats/prometheus and GET
                      /ready of Envoy's admin interface, which itself listens on a Unix
                      socket in the runtime directory. Default: 9901
  --admin-port PORT   Earlier name of --stats-port.
  --enroll-port PORT  TCP port of the enrollment listener (server TLS only, POST /v1/enroll
                      only) on the listen address. Default: 8444
  --trust-domain NAME SPIFFE trust domain of the principals: applications are
                      spiffe://NAME/app/APP. Lowercase letters, digits, dots and
                      hyphens. Default: hsmgate.demo
  --no-demo-apps      Register no applications and create no keys; register them with
                      'hsmgate apps create'.
`

/** Parses a TCP port option, or returns `fallback` when it is absent. */
export function parsePort(value: string | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback
  const port = Number(value)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CliError(`${option} ${value} is not a TCP port; use 1 to 65535`, EXIT.usage)
  }
  return port
}

/**
 * Parses --stats-port, or its earlier name --admin-port, with the default 9901. Throws CliError
 * when both are given.
 */
export function parseStatsPort(values: { 'stats-port'?: string; 'admin-port'?: string }): number {
  const stats = values['stats-port']
  const admin = values['admin-port']
  if (stats !== undefined && admin !== undefined) {
    throw new CliError(
      '--admin-port is the earlier name of --stats-port, and both are given; use --stats-port only',
      EXIT.usage,
    )
  }
  if (admin !== undefined) return parsePort(admin, '--admin-port', 9901)
  return parsePort(stats, '--stats-port', 9901)
}

/** `hsmgate init`: writes the setup and prints its directory on stdout. */
export async function runInit(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', default: 'var' },
      force: { type: 'boolean', default: false },
      listen: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      'stats-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'enroll-port': { type: 'string' },
      'trust-domain': { type: 'string', default: DEMO_TRUST_DOMAIN },
      'no-demo-apps': { type: 'boolean', default: false },
    },
  })
  const trustDomain = values['trust-domain']
  if (!TRUST_DOMAIN_PATTERN.test(trustDomain)) {
    throw new CliError(
      `--trust-domain '${trustDomain}' is invalid; use 1 to 255 lowercase letters, digits, ` +
        'dots and hyphens, such as example.internal',
      EXIT.usage,
    )
  }
  const layout = await createEmbeddedSetup({
    dir: values.dir,
    force: values.force,
    listenAddress: values.listen,
    listenPort: parsePort(values.port, '--port', 8443),
    statsPort: parseStatsPort(values),
    enrollPort: parsePort(values['enroll-port'], '--enroll-port', 8444),
    trustDomain,
    demoApps: !values['no-demo-apps'],
    logger,
  })
  process.stdout.write(`created ${layout.config}\n`)
  return EXIT.ok
}
