import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseTpmPublic } from '../../crypto-backend/pki/tpm/tpm-public.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { openKeysSession } from './keys-session.js'
import { parseHostBinding } from './tokens.js'

export const tpmHelp = `Usage: hsmgate tpm register-ak --host HOST --ak-public FILE [--dir DIR]
       hsmgate tpm remove-ak --ak-name NAME [--dir DIR]

Manages the TPM attestation keys that the gateway trusts. An enrollment or renewal that claims
a TPM-resident key must be certified by an attestation key registered for the certificate's
host. Run 'hsmgate agent tpm-ak --out FILE' on the host, check FILE's origin, then register it.

  register-ak   Registers the attestation key in FILE (base64 TPMT_PUBLIC, ECC P-256,
                restricted signing) for HOST and prints its TPM name. Registering a key again
                moves it to the new HOST.
  remove-ak     Removes a registered key by its TPM name (hex), so that its attestations are
                rejected from then on. Certificates already issued stay valid until they expire
                or are revoked.

Options:
  --host HOST        DNS name of the application host, as in 'hsmgate tokens create'.
  --ak-public FILE   File written by 'hsmgate agent tpm-ak'.
  --ak-name NAME     TPM name of a registered key, as register-ak printed it.
  --dir DIR          Directory of the setup made by 'hsmgate init'. Default: ./var
`

function readAkPublic(path: string): Buffer {
  let text: string
  try {
    text = readFileSync(path, 'utf8').trim()
  } catch (error) {
    throw new CliError(`--ak-public ${path}: ${(error as Error).message}`, EXIT.usage)
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    throw new CliError(
      `--ak-public ${path} is not base64 text; use the file 'hsmgate agent tpm-ak' wrote`,
      EXIT.usage,
    )
  }
  return Buffer.from(text, 'base64')
}

async function register(
  values: Record<string, string | undefined>,
  logger: Logger,
): Promise<number> {
  if (values.host === undefined || values['ak-public'] === undefined) {
    throw new CliError('register-ak needs --host HOST and --ak-public FILE', EXIT.usage)
  }
  const { host, addresses } = parseHostBinding(values.host)
  if (addresses.length > 0) throw new CliError('--host takes a host name only', EXIT.usage)
  const publicArea = readAkPublic(values['ak-public'])
  let name: string
  try {
    name = parseTpmPublic(publicArea, 'attestation key').name.toString('hex')
  } catch (error) {
    throw new CliError(
      `--ak-public ${values['ak-public']}: ${(error as Error).message}`,
      EXIT.usage,
    )
  }
  const session = await openKeysSession(values.dir ?? 'var', logger, false)
  try {
    await session.store.tpm.putAttestationKey({
      name,
      host,
      publicArea: publicArea.toString('base64'),
      registeredAt: new Date().toISOString(),
    })
  } finally {
    await session.close()
  }
  logger.info({ ak: name, host }, 'attestation key registered')
  process.stdout.write(JSON.stringify({ ak_name: name, host }, null, 2) + '\n')
  return EXIT.ok
}

async function remove(values: Record<string, string | undefined>, logger: Logger): Promise<number> {
  const name = values['ak-name']
  if (name === undefined || !/^[0-9a-f]{68,132}$/.test(name)) {
    throw new CliError('remove-ak needs --ak-name NAME, the hex TPM name', EXIT.usage)
  }
  const session = await openKeysSession(values.dir ?? 'var', logger, false)
  try {
    if (!(await session.store.tpm.removeAttestationKey(name))) {
      throw new CliError(`attestation key ${name} is not registered`)
    }
  } finally {
    await session.close()
  }
  logger.info({ ak: name }, 'attestation key removed')
  process.stdout.write(JSON.stringify({ ak_name: name, removed: true }) + '\n')
  return EXIT.ok
}

/** `hsmgate tpm register-ak|remove-ak`. */
export async function runTpm(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      'ak-public': { type: 'string' },
      'ak-name': { type: 'string' },
      dir: { type: 'string', default: 'var' },
    },
  })
  if (positionals.length === 1 && positionals[0] === 'register-ak') return register(values, logger)
  if (positionals.length === 1 && positionals[0] === 'remove-ak') return remove(values, logger)
  throw new CliError("use 'hsmgate tpm register-ak' or 'hsmgate tpm remove-ak'", EXIT.usage)
}
