import { X509Certificate } from 'node:crypto'
import type { Hono } from 'hono'
import type { IssuedCertificate, Store } from '../../store/store.js'
import { ApiError, invalidRequest } from '../api-error.js'
import type { BackendDeps, BackendEnv } from '../context.js'
import { checkCsr } from '../pki/csr-check.js'
import { attestedProtection } from '../pki/tpm/attested-protection.js'
import { normalizeSerial } from '../../store/certificate-serial.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'

/**
 * Registers POST /v1/certs/renew, sent over the main mTLS listener with the current certificate.
 * The body is `{ certificate, csr }`; authz has checked that `certificate` is the peer
 * certificate, and the decision header covers the body. The current certificate must be in the
 * store for the calling application, active, unexpired and the newest issued for its host, and
 * the CSR must be for a new key. The new certificate keeps the application, host and addresses
 * of the current one's record. An optional `tpm` attestation of the new key makes the new
 * certificate 'tpm'; a certificate whose key was TPM-attested renews only with a fresh one.
 */
export function registerRenewRoute(app: Hono<BackendEnv>, deps: BackendDeps): void {
  app.post('/v1/certs/renew', async (c) => {
    c.get('audit').operation = 'renew'
    const certificates = deps.clientCertificates
    if (certificates === undefined) {
      throw new ApiError(503, 'enrollment_unavailable', 'certificate issuance is not configured')
    }
    const body = parseJsonObject(c.get('body'))
    rejectUnknownFields(body, ['certificate', 'csr', 'tpm'])
    const current = parseCurrent(body.certificate)
    const record = await currentRecord(deps.store, current, c.get('principal'), (p) =>
      certificates.appOf(p),
    )
    const csr = await checkCsr(body.csr)
    if (csr.publicKeySpki.equals(current.publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new ApiError(400, 'key_reused', 'the CSR must be for a new key, not the current one')
    }
    if (record.keyProtection === 'tpm' && body.tpm === undefined) {
      throw new ApiError(
        403,
        'attestation_required',
        'the current certificate has a TPM-attested key, so its renewal needs a TPM attestation ' +
          "of the new key; renew with the agent directory that 'hsmgate agent enroll --tpm' made",
      )
    }
    const outcome = await attestedProtection(
      body.tpm,
      csr.publicKeySpki,
      deps.store.tpm,
      { host: record.host, decisionId: c.get('decisionId'), logger: deps.logger },
      deps.tpm,
    )
    // The EK certificate path answers the first request with a challenge and issues nothing.
    if ('challenge' in outcome) {
      return c.json({ activation: outcome.challenge, decision_id: c.get('decisionId') })
    }
    const protection = outcome.protection
    const issued = await certificates.issue(record, csr.publicKeySpki, protection)
    deps.logger.info(
      {
        decision_id: c.get('decisionId'),
        app: record.app,
        host: record.host,
        previous: record.serial,
        serial: issued.serial,
        key_protection: protection,
      },
      'client certificate renewed',
    )
    return c.json({
      certificate: issued.chainPem,
      serial: issued.serial,
      not_before: issued.notBefore.toISOString(),
      not_after: issued.notAfter.toISOString(),
      decision_id: c.get('decisionId'),
    })
  })
}

function parseCurrent(pem: unknown): X509Certificate {
  if (typeof pem !== 'string') throw invalidRequest("field 'certificate' must be a PEM certificate")
  try {
    return new X509Certificate(pem)
  } catch {
    throw invalidRequest("field 'certificate' is not a PEM certificate")
  }
}

/** Returns the store record of the current certificate, or throws why it cannot be renewed. */
async function currentRecord(
  store: Pick<Store, 'certificate' | 'certificatesOf'>,
  current: X509Certificate,
  principal: string,
  appOf: (principal: string) => string | undefined,
): Promise<IssuedCertificate> {
  const record = await store.certificate(normalizeSerial(current.serialNumber))
  if (record === undefined || record.app !== appOf(principal)) {
    throw new ApiError(
      403,
      'certificate_unknown',
      'this certificate was not issued by enrollment or renewal; enroll with a token first',
    )
  }
  if (record.status !== 'active') {
    throw new ApiError(403, 'certificate_revoked', 'this certificate is revoked; enroll again')
  }
  if (Date.parse(record.notAfter) <= Date.now()) {
    throw new ApiError(403, 'certificate_expired', 'this certificate has expired; enroll again')
  }
  const newest = (await store.certificatesOf(record.app))
    .filter((c) => c.host === record.host)
    .reduce((a, b) => (b.issuedAt > a.issuedAt ? b : a), record)
  if (newest.serial !== record.serial) {
    throw new ApiError(
      403,
      'certificate_superseded',
      'a newer certificate was issued for this application and host; renew with that one',
    )
  }
  return record
}
