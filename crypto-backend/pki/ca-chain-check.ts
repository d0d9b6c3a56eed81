import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

/** A problem with a CA certificate offered to `hsmgate ca import`. */
export class CaImportError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CaImportError'
  }
}

/** Checks that `cert` may act as an issuing CA: CA basic constraints, keyCertSign and cRLSign. */
export function checkCaProfile(cert: x509.X509Certificate): void {
  const basic = cert.getExtension(x509.BasicConstraintsExtension)
  if (basic?.ca !== true) {
    throw new CaImportError(
      `${cert.subject} is not a CA certificate (basicConstraints cA is not true); have it ` +
        'issued from the CSR with a CA profile',
    )
  }
  const usage = cert.getExtension(x509.KeyUsagesExtension)
  const needed = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
  if (usage !== null && (usage.usages & needed) !== needed) {
    throw new CaImportError(
      `${cert.subject} lacks key usage keyCertSign and cRLSign, which the gateway needs to ` +
        'issue certificates and CRLs',
    )
  }
}

/**
 * Builds the chain from `cert` through `others` to a self-signed root and verifies every
 * signature and validity period at `now`, as `openssl verify` does for a chain whose root is
 * trusted. Returns the chain, `cert` first and the root last.
 */
export async function verifyChain(
  cert: x509.X509Certificate,
  others: x509.X509Certificate[],
  now = new Date(),
): Promise<x509.X509Certificate[]> {
  const chain = [...(await new x509.X509ChainBuilder({ certificates: others }).build(cert))]
  const root = chain[chain.length - 1]!
  if (!(await root.isSelfSigned())) {
    throw new CaImportError(
      `the chain of ${cert.subject} ends at ${root.subject}, which is not a self-signed root; ` +
        'pass the issuers up to the root with --chain FILE',
    )
  }
  for (const [index, link] of chain.entries()) {
    const issuer = chain[index + 1] ?? link
    if (now < link.notBefore || now > link.notAfter) {
      throw new CaImportError(
        `${link.subject} is not valid now (${link.notBefore.toISOString()} to ${link.notAfter.toISOString()})`,
      )
    }
    if (index > 0) checkCaProfile(link)
    if (!(await link.verify({ publicKey: issuer.publicKey, signatureOnly: true }))) {
      throw new CaImportError(
        `the signature on ${link.subject} does not verify with ${issuer.subject}`,
      )
    }
  }
  return chain
}
