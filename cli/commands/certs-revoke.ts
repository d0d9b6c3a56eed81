import { normalizeSerial } from '../../store/certificate-serial.js'
import type { IssuedCertificate, Store } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'

/** CRL reason codes `hsmgate certs revoke --reason` accepts. */
export const REVOCATION_REASONS = [
  'keyCompromise',
  'cessationOfOperation',
  'superseded',
  'unspecified',
] as const

export interface RevokeRequest {
  serial?: string
  app?: string
  reason: string
}

/** Checks the options of `certs revoke` and returns the normalised serial or app. */
export function checkRevokeRequest(request: RevokeRequest): { serial?: string; app?: string } {
  if ((request.serial === undefined) === (request.app === undefined)) {
    throw new CliError('name exactly one of --serial SERIAL and --app NAME', EXIT.usage)
  }
  if (!(REVOCATION_REASONS as readonly string[]).includes(request.reason)) {
    throw new CliError(
      `--reason '${request.reason}' is not a reason; use one of ${REVOCATION_REASONS.join(', ')}`,
      EXIT.usage,
    )
  }
  if (request.serial !== undefined) {
    if (!/^[0-9a-fA-F:]{1,128}$/.test(request.serial)) {
      throw new CliError(
        `--serial '${request.serial}' is not a hex serial; copy it from 'hsmgate certs list' ` +
          "or 'openssl x509 -noout -serial'",
        EXIT.usage,
      )
    }
    return { serial: normalizeSerial(request.serial) }
  }
  return { app: request.app }
}

/**
 * Marks the named certificate, or every active certificate of the application, revoked in the
 * store. Throws when nothing is left to revoke, naming the serial or application.
 */
export async function revokeInStore(
  store: Pick<Store, 'certificate' | 'certificatesOf' | 'revokeCertificate'>,
  target: { serial?: string; app?: string },
  reason: string,
  now: Date,
): Promise<IssuedCertificate[]> {
  const candidates =
    target.serial !== undefined
      ? [await store.certificate(target.serial)].filter((c) => c !== undefined)
      : await store.certificatesOf(target.app!)
  if (target.serial !== undefined && candidates.length === 0) {
    throw new CliError(
      `no certificate with serial ${target.serial} in the store; list them with 'hsmgate certs list'`,
    )
  }
  const active = candidates.filter((c) => c.status === 'active' && new Date(c.notAfter) > now)
  if (active.length === 0) {
    const what = target.serial ?? `application '${target.app}'`
    throw new CliError(`${what} has no active certificate to revoke`)
  }
  const revoked: IssuedCertificate[] = []
  for (const certificate of active) {
    await store.revokeCertificate(certificate.serial, reason, now.toISOString())
    revoked.push((await store.certificate(certificate.serial)) ?? certificate)
  }
  return revoked
}
