import { rmSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  checkCaProfile,
  CaImportError,
  verifyChain,
} from '../../crypto-backend/pki/ca-chain-check.js'
import { checkSubject, createCaRequest } from '../../crypto-backend/pki/ca-request.js'
import { readCertificates } from '../../crypto-backend/pki/issuing-ca.js'
import { writeFileAtomic } from '../../crypto-backend/pki/sds-files.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { pendingFile, readPending, reissueProbe, switchIssuingCa } from './ca-switch.js'
import { openKeysSession, type KeysSession } from './keys-session.js'

export const caHelp = `Usage: hsmgate ca <subcommand> [options]

Manages the issuing CA, whose ECDSA P-256 key is generated in and never leaves the HSM.
'hsmgate init' creates a self-signed demo root; for production the organisation's PKI
certifies an hsmgate key as an intermediate CA:

  init --csr FILE [--subject DN]   Generate a new CA key in the HSM and write a PKCS#10 request
                                   for it to FILE. Default subject: 'CN=hsmgate issuing CA'.
  import CERT [--chain FILE]       Check that CERT certifies the key from 'ca init', is a CA
                                   certificate, and chains through FILE to a self-signed root;
                                   then make it the issuing CA and the chain the trust bundle.
                                   A running 'hsmgate up' switches to it within about 10 s,
                                   without a restart. Client certificates of the previous CA
                                   are no longer trusted then: enroll the agents again.

Options:
  --dir DIR   Directory of the setup made by 'hsmgate init'. Default: ./var
`

type Values = { csr?: string; subject: string; chain?: string }

async function init(session: KeysSession, values: Values): Promise<unknown> {
  const request = await createCaRequest(session.cluster!, values.subject)
  writeFileAtomic(values.csr!, request.csr.toString('pem') + '\n', 0o644)
  const pending = {
    key_id: request.keyId.toString('hex'),
    label: request.label,
    subject: values.subject,
    created_at: new Date().toISOString(),
  }
  writeFileAtomic(pendingFile(session.config), JSON.stringify(pending, null, 2) + '\n', 0o644)
  return {
    csr: values.csr,
    ...pending,
    next: 'have the CSR signed as a CA, then run hsmgate ca import',
  }
}

async function importCa(session: KeysSession, certPath: string, values: Values): Promise<unknown> {
  const pending = readPending(session.config)
  if (pending === undefined) {
    throw new CliError(
      `no pending CA key in ${pendingFile(session.config)}; run 'hsmgate ca init --csr FILE' first`,
    )
  }
  const [cert, ...bundled] = readCertificates(certPath)
  const others = [...bundled, ...(values.chain === undefined ? [] : readCertificates(values.chain))]
  const hsmKey = await session.cluster!.publicKeySpki(Buffer.from(pending.key_id, 'hex'))
  if (!Buffer.from(cert!.publicKey.rawData).equals(hsmKey)) {
    throw new CliError(
      `${certPath} certifies a different public key than the CA key ${pending.key_id} in the HSM; ` +
        'import the certificate issued from the CSR that the last ca init wrote',
    )
  }
  checkCaProfile(cert!)
  const chain = await verifyChain(cert!, others)
  const files = switchIssuingCa(session.config, pending.key_id, chain)
  rmSync(pendingFile(session.config), { force: true })
  const probe = await reissueProbe(session.config.file, session.cluster!)
  return {
    issuing_ca: cert!.subject,
    root: chain[chain.length - 1]!.subject,
    key_id: pending.key_id,
    files: { ...files, probe },
    next:
      'a running gateway issues and serves under the new CA within about 10 s; enroll the ' +
      'agents again, because certificates of the previous CA are no longer trusted',
  }
}

/** `hsmgate ca init|import`: prints the result as JSON. */
export async function runCa(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: 'var' },
      csr: { type: 'string' },
      subject: { type: 'string', default: 'CN=hsmgate issuing CA, O=hsmgate' },
      chain: { type: 'string' },
    },
  })
  const [subcommand, cert, ...extra] = positionals
  if (subcommand === 'init' && (values.csr === undefined || cert !== undefined)) {
    throw new CliError('ca init needs --csr FILE, the path to write the request to', EXIT.usage)
  }
  if (subcommand === 'import' && (cert === undefined || extra.length > 0)) {
    throw new CliError(
      'ca import needs one CERT file, the CA certificate issued from the CSR',
      EXIT.usage,
    )
  }
  if ((subcommand !== 'init' && subcommand !== 'import') || extra.length > 0) {
    throw new CliError(`unknown subcommand '${subcommand ?? ''}'; use init or import`, EXIT.usage)
  }
  try {
    checkSubject(values.subject)
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.usage)
  }
  const session = await openKeysSession(values.dir, logger, true)
  try {
    const result =
      subcommand === 'init' ? await init(session, values) : await importCa(session, cert!, values)
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return EXIT.ok
  } catch (error) {
    if (error instanceof CaImportError) throw new CliError(error.message)
    throw error
  } finally {
    await session.close()
  }
}
