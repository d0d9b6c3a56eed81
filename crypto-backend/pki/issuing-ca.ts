import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import * as x509 from '@peculiar/x509'
import type { LoadedConfig } from '../../config/load.js'
import type { HsmCluster } from '../hsm/index.js'
import { CertificateIssuer } from './certificate-issuer.js'

/** The issuing CA of a setup: its certificate, its HSM key id and the chain above it. */
export interface IssuingCa {
  certificate: x509.X509Certificate
  keyId: Buffer
  /** Certificates above the issuing CA that are not self-signed, to send with a leaf. */
  intermediates: x509.X509Certificate[]
  issuer: CertificateIssuer
}

/** Reads every certificate of a PEM file. Throws naming the file when it contains none. */
export function readCertificates(path: string): x509.X509Certificate[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new Error(`cannot read certificate file ${path}: ${(error as Error).message}`)
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
  if (blocks === null)
    throw new Error(`${path} contains no PEM certificate; pass a PEM certificate file`)
  return blocks.map((pem) => new x509.X509Certificate(pem))
}

/** Opens the issuing CA that pki.ca_cert and pki.ca_key_id name, signing through `cluster`. */
export async function openIssuingCa(config: LoadedConfig, cluster: HsmCluster): Promise<IssuingCa> {
  const [certificate] = readCertificates(config.pki.ca_cert)
  const keyId = Buffer.from(config.pki.ca_key_id, 'hex')
  const chain = config.pki.ca_chain === undefined ? [] : readCertificates(config.pki.ca_chain)
  const intermediates = []
  for (const cert of chain) if (!(await cert.isSelfSigned())) intermediates.push(cert)
  const issuer = new CertificateIssuer(cluster, keyId, certificate!, {
    crlUrl: config.pki.crl_url,
  })
  return { certificate: certificate!, keyId, intermediates, issuer }
}

/** Returns the PEM chain to send with a leaf: the leaf, the issuing CA and its intermediates. */
export function chainPem(leaf: x509.X509Certificate, ca: IssuingCa): string {
  return [leaf, ca.certificate, ...ca.intermediates].map((c) => c.toString('pem')).join('\n') + '\n'
}
