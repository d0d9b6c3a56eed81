import { createHash, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { durationMs } from '../../crypto-backend/pki/duration.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { HOST_PATTERN } from './app-input.js'
import { openKeysSession } from './keys-session.js'

export const tokensHelp = `Usage: hsmgate tokens create --app NAME --host HOST[,ADDRESS...]
                             [--ttl DURATION] [--dir DIR]

Creates a single-use enrollment token for one application host. 'hsmgate agent enroll' on that
host exchanges it for a client certificate whose names come from the token: the application's
URI SAN, HOST as DNS SAN and each ADDRESS as IP SAN. The token is printed once on stdout, as
JSON with its expiry; only its SHA-256 hash is stored, so it cannot be shown again.

Options:
  --app NAME        Registered application the certificate is for.
  --host HOST[,ADDRESS...]
                    DNS name of the host, then its IP addresses, comma-separated.
  --ttl DURATION    How long the token may be redeemed, such as 30m or 2h (units ms, s, m, h,
                    d). Default: 15m. Maximum: 7d
  --dir DIR         Directory of the setup made by 'hsmgate init'. Default: ./var
`

const DEFAULT_TTL = '15m'
const MAX_TTL_MS = 7 * 86_400_000

/** Prefix of enrollment tokens, so that a leaked token is recognisable in a secret scan. */
const TOKEN_PREFIX = 'hsmgate_et_'

/** Splits `HOST[,ADDRESS...]` and checks each part; throws CliError with exit code 2. */
export function parseHostBinding(text: string): { host: string; addresses: string[] } {
  const [host = '', ...addresses] = text.split(',').map((part) => part.trim())
  if (!HOST_PATTERN.test(host)) {
    throw new CliError(`--host '${host}' is not a lowercase DNS name`, EXIT.usage)
  }
  const bad = addresses.find((address) => isIP(address) === 0)
  if (bad !== undefined)
    throw new CliError(`--host address '${bad}' is not an IP address`, EXIT.usage)
  return { host, addresses }
}

function parseTtl(text: string): number {
  let ms: number
  try {
    ms = durationMs(text)
  } catch (error) {
    throw new CliError(`--ttl: ${(error as Error).message}`, EXIT.usage)
  }
  if (ms < 1000 || ms > MAX_TTL_MS) {
    throw new CliError(`--ttl ${text} is outside 1s to 7d`, EXIT.usage)
  }
  return ms
}

/** `hsmgate tokens create`: stores the token's hash and prints the token once. */
export async function runTokens(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      app: { type: 'string' },
      host: { type: 'string' },
      ttl: { type: 'string', default: DEFAULT_TTL },
      dir: { type: 'string', default: 'var' },
    },
  })
  if (positionals.length !== 1 || positionals[0] !== 'create') {
    throw new CliError("the only subcommand is 'create'; run 'hsmgate tokens --help'", EXIT.usage)
  }
  if (values.app === undefined || values.host === undefined) {
    throw new CliError('tokens create needs --app NAME and --host HOST[,ADDRESS...]', EXIT.usage)
  }
  const binding = parseHostBinding(values.host)
  const ttlMs = parseTtl(values.ttl)
  const session = await openKeysSession(values.dir, logger, false)
  try {
    if ((await session.store.application(values.app)) === undefined) {
      throw new CliError(
        `application '${values.app}' is not registered; register it with 'hsmgate apps ` +
          `create ${values.app} --team TEAM --host HOST --address IP' or run 'hsmgate apps list'`,
      )
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
    const now = new Date()
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString()
    await session.store.putEnrollmentToken({
      tokenHash: createHash('sha256').update(token, 'utf8').digest('hex'),
      app: values.app,
      ...binding,
      expiresAt,
      createdAt: now.toISOString(),
      usedAt: null,
    })
    logger.info(
      { app: values.app, host: binding.host, expires_at: expiresAt },
      'enrollment token created',
    )
    const result = { token, app: values.app, ...binding, expires_at: expiresAt }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return EXIT.ok
  } finally {
    await session.close()
  }
}
