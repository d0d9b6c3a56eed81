import { parseArgs } from 'node:util'
import { openIssuingCa } from '../../crypto-backend/pki/issuing-ca.js'
import {
  crlFile,
  publishServingCertificate,
  publishValidation,
} from '../../crypto-backend/pki/tls-publisher.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { checkRevokeRequest, REVOCATION_REASONS, revokeInStore } from './certs-revoke.js'
import { openKeysSession, type KeysSession } from './keys-session.js'
import { normalizeSerial } from '../../store/certificate-serial.js'
import type { IssuedCertificate } from '../../store/store.js'

export const certsHelp = `Usage: hsmgate certs <subcommand> [options]

Lists and revokes the client certificates the gateway issued, and publishes the CRL and the
serving certificate that a running gateway's Envoy reads through SDS within seconds.

Subcommands:
  list [--app NAME]                     Print the issued certificates as JSON. status is
                                        active, revoked, expired, or superseded when a newer
                                        certificate was issued for the same host.
  revoke --serial SERIAL | --app NAME   Revoke one certificate, or every active certificate of
                                        an application, and publish a new CRL signed by the
                                        HSM CA. authz refuses the certificate at once.
  crl                                   Publish a new CRL now.
  renew-server                          Issue a new serving certificate for the gateway now.

Options:
  --dir DIR         Directory of the setup made by 'hsmgate init'. Default: ./var
  --reason REASON   For revoke: ${REVOCATION_REASONS.join(', ')}. Default: cessationOfOperation
`

type Values = { app?: string; serial?: string; reason: string }

async function list(session: KeysSession, values: Values): Promise<unknown> {
  const apps =
    values.app === undefined
      ? (await session.store.listApplications()).map((a) => a.name)
      : [values.app]
  if (values.app !== undefined) await registeredApp(session, values.app)
  const certificates = []
  for (const app of apps) {
    certificates.push(...shownStatus(await session.store.certificatesOf(app), new Date()))
  }
  return certificates
}

/**
 * Replaces the stored status `active` by what renewal and authz make of the certificate:
 * `superseded` when a newer one was issued for the same application and host, `expired` after
 * notAfter.
 */
function shownStatus(certificates: IssuedCertificate[], now: Date) {
  const newest = new Map<string, IssuedCertificate>()
  for (const c of certificates) {
    const seen = newest.get(c.host)
    if (seen === undefined || c.issuedAt > seen.issuedAt) newest.set(c.host, c)
  }
  return certificates.map((c) => {
    if (c.status !== 'active') return c
    if (Date.parse(c.notAfter) <= now.getTime()) return { ...c, status: 'expired' }
    if (newest.get(c.host)?.serial !== c.serial) return { ...c, status: 'superseded' }
    return c
  })
}

/** Throws a CliError naming the registered applications when `app` is not one of them. */
async function registeredApp(session: KeysSession, app: string): Promise<void> {
  if ((await session.store.application(app)) !== undefined) return
  const known = (await session.store.listApplications()).map((a) => a.name).join(', ') || 'none'
  throw new CliError(
    `application '${app}' is not registered (registered: ${known}); run 'hsmgate apps list'`,
  )
}

async function revoke(session: KeysSession, values: Values): Promise<unknown> {
  const target = checkRevokeRequest(values)
  if (target.app !== undefined) await registeredApp(session, target.app)
  const revoked = await revokeInStore(session.store, target, values.reason, new Date())
  const crl = await crlNow(session)
  return { revoked: revoked.map((c) => ({ serial: c.serial, app: c.app })), crl }
}

async function crlNow(session: KeysSession) {
  const ca = await openIssuingCa(session.config, session.cluster!)
  const crl = await publishValidation(session.config, ca, session.cluster!, session.store)
  return {
    entries: crl.entries.length,
    this_update: crl.thisUpdate.toISOString(),
    next_update: crl.nextUpdate?.toISOString(),
    file: crlFile(session.config),
  }
}

async function renewServer(session: KeysSession): Promise<unknown> {
  const ca = await openIssuingCa(session.config, session.cluster!)
  const leaf = await publishServingCertificate(session.config, ca)
  return { serial: normalizeSerial(leaf.serialNumber), not_after: leaf.notAfter.toISOString() }
}

const SUBCOMMANDS: Record<
  string,
  { hsm: boolean; run: (s: KeysSession, v: Values) => Promise<unknown> }
> = {
  list: { hsm: false, run: list },
  revoke: { hsm: true, run: revoke },
  crl: { hsm: true, run: (s) => crlNow(s) },
  'renew-server': { hsm: true, run: (s) => renewServer(s) },
}

/** `hsmgate certs SUBCOMMAND`: prints the result as JSON. */
export async function runCerts(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: 'var' },
      app: { type: 'string' },
      serial: { type: 'string' },
      reason: { type: 'string', default: 'cessationOfOperation' },
    },
  })
  const [subcommand, ...extra] = positionals
  const entry = SUBCOMMANDS[subcommand ?? '']
  if (entry === undefined || extra.length > 0) {
    const names = Object.keys(SUBCOMMANDS).join(', ')
    throw new CliError(`unknown subcommand '${subcommand ?? ''}'; use one of ${names}`, EXIT.usage)
  }
  // Usage errors are reported before the HSM is opened.
  if (subcommand === 'revoke') checkRevokeRequest(values)
  const session = await openKeysSession(values.dir, logger, entry.hsm)
  try {
    const result = await entry.run(session, values)
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return EXIT.ok
  } finally {
    await session.close()
  }
}
