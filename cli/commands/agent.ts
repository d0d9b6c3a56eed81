import { parseArgs } from 'node:util'
import { enroll } from '../../client/enroll.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { gatewayOption, keyTypeOption, readOption, tokenFromFile } from './agent-options.js'
import { runAgentLoop } from './agent-run.js'
import { agentTpmHelp, agentTpmOptions, runAgentTpmAk, tpmSettingsOf } from './agent-tpm.js'

export const agentHelp = `Usage: hsmgate agent <enroll|run|tpm-ak> [options]

Runs on an application host and keeps its client certificate fresh. Results go to stdout as
JSON, one log line per step to stderr. Exit status: 0 on success, 1 when the gateway refuses or
cannot be reached, 2 on a usage error.

  hsmgate agent enroll --gateway URL --ca FILE (--token TOKEN | --token-file FILE) --out DIR
    Generates a key, sends a CSR with the single-use token from 'hsmgate tokens create' to the
    gateway's enrollment listener, and writes DIR/client.key and DIR/client.crt (mode 0600, in
    a directory of mode 0700). A used or expired token is refused. With --tpm the key is
    created in the TPM and attested; DIR/tpm.json records the TPM settings for renewals.

  hsmgate agent tpm-ak --out FILE [--tpm-tcti TCTI] [--tpm-ak HANDLE]
    Creates the TPM's storage key and attestation key when missing and writes the attestation
    key's public area to FILE, for an operator to register with 'hsmgate tpm register-ak'.

  hsmgate agent run --gateway URL --ca FILE --dir DIR [--once] [--force] [--reload-command CMD]
    Renews the certificate in DIR over mutual TLS with the current one after two thirds of its
    lifetime (40 minutes for the default 1 hour), with a new key every time, then runs CMD; a
    failing CMD is logged and renewal goes on. Failed attempts are retried after up to 1 s,
    2 s, 4 s ... (random jitter), at most 5 minutes apart, until the certificate expires. A
    revoked, superseded, expired or unknown certificate is not retried: the agent exits with 1.
    Without --once it runs until SIGINT or SIGTERM, finishes a renewal in flight and exits 0.

Options:
  --gateway URL          Gateway base URL: the enrollment listener for enroll (default port
                         8444), the main listener for run (default port 8443).
  --ca FILE              PEM file of the CA that issued the gateway's serving certificate.
  --token TOKEN          Enrollment token. Visible to other local users in the process list;
                         prefer --token-file.
  --token-file FILE      File holding the enrollment token: the JSON that 'hsmgate tokens
                         create' prints, or the token alone.
  --out DIR, --dir DIR   Directory of the key and certificate.
  --key-type TYPE        ec-p256 (default), rsa-2048 or rsa-3072.
  --once                 Renew once if due, then exit; for cron.
  --force                With --once, renew even when not yet due.
  --reload-command CMD   Shell command run after each renewal, such as 'systemctl reload app'.
${agentTpmHelp}  --renew-at FRACTION    Fraction of the certificate lifetime, counted from its notBefore, after
                         which it is renewed: 0.1 to 0.9. Default 0.67 (two thirds).
  --retry-initial TIME   Upper bound of the first retry delay, such as 500ms or 2s. Default 1s.
  --retry-max TIME       Upper bound of any retry delay, 1s to 60m. Default 5m.
`

async function runEnroll(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: 'string' },
      ca: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      out: { type: 'string' },
      'key-type': { type: 'string', default: 'ec-p256' },
      tpm: { type: 'boolean', default: false },
      ...agentTpmOptions,
    },
  })
  if ((values.token === undefined) === (values['token-file'] === undefined)) {
    throw new CliError('set exactly one of --token and --token-file', EXIT.usage)
  }
  if (values.out === undefined) throw new CliError('--out DIR is required', EXIT.usage)
  const token =
    values.token ??
    tokenFromFile(readOption(values['token-file'], '--token-file'), values['token-file']!)
  const result = await enroll({
    gateway: gatewayOption(values.gateway),
    caPem: readOption(values.ca, '--ca'),
    token,
    dir: values.out,
    keyType: keyTypeOption(values['key-type']),
    ...(values.tpm ? { tpm: tpmSettingsOf(values) } : {}),
    logger,
  }).catch((error: unknown) => {
    throw new CliError(`enrollment failed: ${(error as Error).message}`)
  })
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  return EXIT.ok
}

/** `hsmgate agent enroll|run`. */
export async function runAgent(argv: string[], logger: Logger): Promise<number> {
  const [subcommand, ...rest] = argv
  if (subcommand === 'enroll') return runEnroll(rest, logger)
  if (subcommand === 'run') return runAgentLoop(rest, logger)
  if (subcommand === 'tpm-ak') return runAgentTpmAk(rest, logger)
  throw new CliError(
    "use 'hsmgate agent enroll', 'hsmgate agent run' or 'hsmgate agent tpm-ak'",
    EXIT.usage,
  )
}
