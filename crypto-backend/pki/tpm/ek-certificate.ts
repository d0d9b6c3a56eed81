import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ApiError } from '../../api-error.js'

/** Extended key usage of an EK certificate, tcg-kp-EKCertificate (TCG EK Credential Profile). */
const EK_CERTIFICATE_EKU = '2.23.133.8.1'

/** Longest chain from an EK certificate to its root that the gateway follows. */
const MAX_CHAIN_DEPTH = 5

/** Largest EK certificate accepted; TPM NV indices for EK certificates hold about 1-2 KiB. */
const MAX_EK_CERTIFICATE_BYTES = 8192

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** An EK certificate that chains to a manufacturer CA. */
export interface TrustedEk {
  readonly certificate: X509Certificate
  /** Hex SHA-256 of the certificate's DER, for logs and to bind a challenge to it. */
  readonly fingerprint: string
}

/**
 * Reads the PEM bundle of TPM manufacturer CAs at `file`, the value of the config key `key`.
 * Every certificate must be a CA certificate. Throws Error naming the key, the file and the fix.
 */
export function loadManufacturerCas(file: string, key: string): X509Certificate[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new Error(`${key}: cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
  const blocks = text.match(PEM_BLOCK) ?? []
  if (blocks.length === 0) {
    throw new Error(`${key}: ${file} contains no PEM certificate; add the TPM manufacturer CAs`)
  }
  return blocks.map((pem, index) => {
    let certificate: X509Certificate
    try {
      certificate = new X509Certificate(pem)
    } catch (error) {
      throw new Error(`${key}: certificate ${index + 1} in ${file} is not a valid X.509 PEM`, {
        cause: error,
      })
    }
    if (!certificate.ca) {
      throw new Error(
        `${key}: certificate ${index + 1} in ${file} (${certificate.subject}) is not a CA ` +
          'certificate; the bundle holds manufacturer root and intermediate CAs only',
      )
    }
    return certificate
  })
}

/**
 * Parses a DER EK certificate and checks that it chains through the bundle to a self-signed CA
 * in the bundle, that each certificate on the way is valid at `now`, and that the EK
 * certificate is no CA and, when it lists extended key usages, lists tcg-kp-EKCertificate.
 * Throws ApiError 400 ek_certificate_invalid or 403 ek_certificate_untrusted.
 */
export function verifyEkCertificate(
  der: Buffer,
  cas: readonly X509Certificate[],
  now = new Date(),
): TrustedEk {
  const certificate = parseEkCertificate(der)
  const fingerprint = createHash('sha256').update(der).digest('hex')
  if (certificate.ca) throw invalid('the EK certificate is a CA certificate')
  const usages = certificate.keyUsage
  if (usages !== undefined && usages.length > 0 && !usages.includes(EK_CERTIFICATE_EKU)) {
    throw invalid(
      `the EK certificate's extended key usages ${usages.join(', ')} do not include ` +
        `tcg-kp-EKCertificate ${EK_CERTIFICATE_EKU}`,
    )
  }
  checkValidity(certificate, now, 'the EK certificate')
  checkChain(certificate, cas, now)
  return { certificate, fingerprint }
}

function parseEkCertificate(der: Buffer): X509Certificate {
  if (der.length > MAX_EK_CERTIFICATE_BYTES) {
    throw invalid(`the EK certificate is ${der.length} bytes; the maximum is 8192`)
  }
  try {
    return new X509Certificate(der)
  } catch {
    throw invalid("field 'tpm.ek_certificate' is not a DER X.509 certificate")
  }
}

/** Follows issuers through `cas` until a self-signed one; throws when the chain breaks. */
function checkChain(ek: X509Certificate, cas: readonly X509Certificate[], now: Date): void {
  let current = ek
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    const issuer = cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey))
    if (issuer === undefined) {
      throw untrusted(
        `no manufacturer CA in pki.tpm_manufacturer_cas issued '${current.subject}' ` +
          `(issuer '${current.issuer}')`,
      )
    }
    checkValidity(issuer, now, `manufacturer CA '${issuer.subject}'`)
    if (issuer.checkIssued(issuer) && issuer.verify(issuer.publicKey)) return
    current = issuer
  }
  throw untrusted(`the EK certificate chain is longer than ${MAX_CHAIN_DEPTH} certificates`)
}

function checkValidity(certificate: X509Certificate, now: Date, what: string): void {
  const from = Date.parse(certificate.validFrom)
  const to = Date.parse(certificate.validTo)
  if (!(from <= now.getTime() && now.getTime() <= to)) {
    throw untrusted(`${what} is valid from ${certificate.validFrom} to ${certificate.validTo}`)
  }
}

function invalid(message: string): ApiError {
  return new ApiError(400, 'ek_certificate_invalid', message)
}

function untrusted(message: string): ApiError {
  return new ApiError(403, 'ek_certificate_untrusted', message)
}
