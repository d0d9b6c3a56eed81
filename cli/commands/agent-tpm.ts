import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseTpmPublic } from '../../crypto-backend/pki/tpm/tpm-public.js'
import {
  attestationKeyPublic,
  checkTcti,
  DEFAULT_TPM_SETTINGS,
  type TpmSettings,
} from '../../client/tpm/index.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'

// TPM options of 'hsmgate agent enroll --tpm' and 'hsmgate agent tpm-ak'.

export const agentTpmOptions = {
  'tpm-tcti': { type: 'string', default: DEFAULT_TPM_SETTINGS.tcti },
  'tpm-parent': { type: 'string', default: '0x81000001' },
  'tpm-ak': { type: 'string', default: '0x81010002' },
} as const

export const agentTpmHelp = `  --tpm                  Create the key in the TPM (ECC P-256, fixedTPM, fixedParent,
                         sensitiveDataOrigin) and prove it with TPM2_Certify by the attestation
                         key over a nonce from the gateway. DIR/client.key is then a TSS2 key
                         file that only this TPM can use. Renewals keep using the TPM.
  --tpm-tcti TCTI        How to reach the TPM: device:/dev/tpmrm0 (default),
                         tabrmd:bus_type=session or swtpm:host=HOST,port=PORT.
  --tpm-parent HANDLE    Persistent storage key for client keys; created when missing.
                         Default 0x81000001.
  --tpm-ak HANDLE        Persistent attestation key. Default 0x81010002.
`

function handleOption(value: string, option: string): number {
  if (!/^0x81[0-9a-f]{6}$/i.test(value)) {
    throw new CliError(`${option} ${value} is not a persistent handle 0x81xxxxxx`, EXIT.usage)
  }
  return Number.parseInt(value, 16)
}

/** Reads the TPM options into settings; throws CliError with exit code 2 for a bad value. */
export function tpmSettingsOf(values: {
  'tpm-tcti': string
  'tpm-parent': string
  'tpm-ak': string
}): TpmSettings {
  let tcti: string
  try {
    tcti = checkTcti(values['tpm-tcti'])
  } catch (error) {
    throw new CliError(`--tpm-tcti: ${(error as Error).message}`, EXIT.usage)
  }
  return {
    ...DEFAULT_TPM_SETTINGS,
    tcti,
    parent: handleOption(values['tpm-parent'], '--tpm-parent'),
    ak: handleOption(values['tpm-ak'], '--tpm-ak'),
  }
}

/**
 * `hsmgate agent tpm-ak --out FILE`: creates the storage key and the attestation key when
 * missing, writes the attestation key's public area (base64 TPMT_PUBLIC) to FILE for the
 * operator, and prints its TPM name.
 */
export async function runAgentTpmAk(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...agentTpmOptions, out: { type: 'string' } },
  })
  if (values.out === undefined) throw new CliError('--out FILE is required', EXIT.usage)
  const settings = tpmSettingsOf(values)
  const publicArea = await attestationKeyPublic(settings, true).catch((error: unknown) => {
    throw new CliError(`cannot read or create the attestation key: ${(error as Error).message}`)
  })
  const name = parseTpmPublic(publicArea, 'attestation key').name.toString('hex')
  writeFileSync(values.out, publicArea.toString('base64') + '\n')
  logger.info({ ak: name, file: values.out }, 'attestation key public area written')
  process.stdout.write(
    JSON.stringify({ ak_name: name, ak_public_file: values.out }, null, 2) + '\n',
  )
  return EXIT.ok
}
