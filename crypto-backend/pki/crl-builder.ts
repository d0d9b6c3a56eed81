import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import type { HsmCluster } from '../hsm/index.js'
import type { IssuedCertificate } from '../../store/store.js'
import { hsmSigningKey, hsmWebCrypto } from './hsm-webcrypto.js'

const CRL_NUMBER_OID = '2.5.29.20'

/** Inputs of a CRL: the CA key in the HSM, the CA certificate, the revoked entries and times. */
export interface CrlRequest {
  cluster: HsmCluster
  caKeyId: Buffer
  caCertificate: x509.X509Certificate
  revoked: IssuedCertificate[]
  now: Date
  lifetimeMs: number
}

/** DER INTEGER of a non-negative safe integer, for the CRL number extension. */
function derInteger(value: number): ArrayBuffer {
  const bytes: number[] = []
  let rest = value
  do {
    bytes.unshift(rest % 256)
    rest = Math.floor(rest / 256)
  } while (rest > 0)
  if ((bytes[0] ?? 0) & 0x80) bytes.unshift(0)
  return Uint8Array.from([0x02, bytes.length, ...bytes]).buffer
}

function reasonOf(text: string | null): x509.X509CrlReason {
  return text === 'keyCompromise'
    ? x509.X509CrlReason.keyCompromise
    : x509.X509CrlReason.cessationOfOperation
}

/**
 * Builds a CRL signed by the CA key in the HSM. Its number is the issue time in milliseconds,
 * which grows with every new CRL as RFC 5280 requires, without a counter to keep. The
 * nextUpdate is `lifetimeMs` after now; the publisher issues a new CRL well before that.
 */
export async function buildCrl(request: CrlRequest): Promise<x509.X509Crl> {
  const crypto = hsmWebCrypto(request.cluster)
  return x509.X509CrlGenerator.create(
    {
      issuer: request.caCertificate.subject,
      thisUpdate: request.now,
      nextUpdate: new Date(request.now.getTime() + request.lifetimeMs),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      signingKey: hsmSigningKey(request.caKeyId),
      entries: request.revoked.map((certificate) => ({
        serialNumber: certificate.serial,
        revocationDate: new Date(certificate.revokedAt ?? request.now.toISOString()),
        reason: reasonOf(certificate.revocationReason),
      })),
      extensions: [
        await x509.AuthorityKeyIdentifierExtension.create(request.caCertificate, false, crypto),
        new x509.Extension(CRL_NUMBER_OID, false, derInteger(request.now.getTime())),
      ],
    },
    crypto,
  )
}

/** Encodes the CRL as PEM with the `X509 CRL` label that OpenSSL reads, because x509 writes `CRL`. */
export function crlPem(crl: x509.X509Crl): string {
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n'
}
