import 'reflect-metadata'
import { createPublicKey, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { ApiError } from '../api-error.js'

/** Upper bound on the CSR text; an ECDSA or RSA-4096 CSR is far smaller. */
const MAX_CSR_CHARS = 16 * 1024
const MIN_RSA_BITS = 2048
const MAX_RSA_BITS = 8192

/** The public key that a certificate signing request contains, after checks. */
export interface CheckedCsr {
  /** DER SubjectPublicKeyInfo. */
  readonly publicKeySpki: Buffer
  readonly keyType: 'ec-p256' | `rsa-${number}`
}

const invalidCsr = (message: string): ApiError => new ApiError(400, 'csr_invalid', message)

/**
 * Parses a PEM PKCS#10 request and checks that its signature verifies with its own key (proof
 * that the caller has the private key) and that the key is ECDSA P-256 or RSA of 2048 to 8192
 * bits. Everything else in the CSR, its subject and any requested extensions or SANs included,
 * is ignored: the issued certificate's names come from the gateway's records. Throws ApiError.
 */
export async function checkCsr(pem: unknown): Promise<CheckedCsr> {
  if (typeof pem !== 'string' || pem.length === 0 || pem.length > MAX_CSR_CHARS) {
    throw invalidCsr(
      `field 'csr' must be a PEM certificate request of at most ${MAX_CSR_CHARS} characters`,
    )
  }
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(pem)
  } catch (error) {
    throw invalidCsr(`field 'csr' is not a PKCS#10 request: ${(error as Error).message}`)
  }
  let valid = false
  try {
    valid = await csr.verify(webcrypto as Crypto)
  } catch {
    valid = false
  }
  if (!valid) throw invalidCsr('the CSR signature does not verify with its public key')
  const publicKeySpki = Buffer.from(csr.publicKey.rawData)
  return { publicKeySpki, keyType: keyTypeOf(publicKeySpki) }
}

function keyTypeOf(spki: Buffer): CheckedCsr['keyType'] {
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' })
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return 'ec-p256'
  const bits = details.modulusLength ?? 0
  if (key.asymmetricKeyType === 'rsa' && bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS) {
    return `rsa-${bits}`
  }
  throw invalidCsr(
    `the CSR key is ${key.asymmetricKeyType ?? 'unknown'}` +
      (details.namedCurve === undefined ? '' : ` ${details.namedCurve}`) +
      (bits === 0 ? '' : ` of ${bits} bits`) +
      `; allowed: ECDSA P-256, RSA of ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`,
  )
}
