import 'reflect-metadata'
import { randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import type { HsmCluster } from '../hsm/index.js'
import { hsmSigningKey, hsmWebCrypto } from './hsm-webcrypto.js'

/** A new issuing-CA key in the HSM and the PKCS#10 request for its certificate. */
export interface CaRequest {
  keyId: Buffer
  label: string
  csr: x509.Pkcs10CertificateRequest
}

/**
 * Generates a P-256 key pair on every HSM member and a CSR signed with it in the HSM, for the
 * organisation's PKI to certify as an intermediate CA. The request contains the CA extensions;
 * the signing CA decides what the certificate holds, and `hsmgate ca import` checks it.
 */
export async function createCaRequest(cluster: HsmCluster, subject: string): Promise<CaRequest> {
  const keyId = randomBytes(16)
  const label = `hsmgate:ca:${new Date().toISOString().slice(0, 19)}`
  const spki = await cluster.generateEcKeyPair({ id: keyId, label }, 'P-256')
  const crypto = hsmWebCrypto(cluster)
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    spki,
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  )
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: subject,
      keys: { publicKey, privateKey: hsmSigningKey(keyId) },
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
      ],
    },
    crypto,
  )
  return { keyId, label, csr }
}

/** Checks that a subject is a distinguished name x509 can parse, such as `CN=x, O=y`. */
export function checkSubject(subject: string): void {
  try {
    new x509.Name(subject)
  } catch (error) {
    throw new Error(
      `subject '${subject}' is not a distinguished name (${(error as Error).message}); ` +
        "write it as 'CN=hsmgate issuing CA, O=Example'",
    )
  }
  if (!/CN=/i.test(subject)) throw new Error(`subject '${subject}' has no CN; add 'CN=...'`)
}
