import 'reflect-metadata'
import { createPublicKey, randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import type { HsmCluster } from '../hsm/index.js'
import { hsmSigningKey, hsmWebCrypto } from './hsm-webcrypto.js'
import { encodeKeyProtection, KEY_PROTECTION_OID } from '../../authz/key-protection.js'
import type { KeyProtection } from '../../store/store.js'

const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' }
const P256_IMPORT = { name: 'ECDSA', namedCurve: 'P-256' }
const RSA_IMPORT = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }

/** Subject alternative names of a leaf certificate. */
export interface SubjectAltNames {
  dns?: string[]
  ip?: string[]
  uri?: string[]
}

/** The purpose of a leaf certificate: a TLS server or a TLS client. */
export type LeafPurpose = 'server' | 'client'

/** A leaf certificate request: the subject's common name, its SANs, lifetime and public key. */
export interface LeafRequest {
  commonName: string
  purpose: LeafPurpose
  altNames: SubjectAltNames
  lifetimeMs: number
  publicKeySpki: Buffer
  /** Where the subject's private key lives, written to the key-protection extension. */
  keyProtection?: KeyProtection
}

function randomSerial(): string {
  // 16 random bytes with the top bit cleared keep the INTEGER positive (RFC 5280, 4.1.2.2).
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] ?? 0) & 0x7f
  return bytes.toString('hex')
}

/** Imports an ECDSA P-256 or RSA subject public key; the CA key itself is always P-256. */
async function importPublicKey(spki: Buffer): Promise<CryptoKey> {
  const rsa =
    createPublicKey({ key: spki, format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa'
  const algorithm = rsa ? RSA_IMPORT : P256_IMPORT
  return webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify'])
}

function altNameEntries(names: SubjectAltNames): x509.JsonGeneralName[] {
  return [
    ...(names.uri ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(names.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(names.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
  ]
}

/** Settings that apply to every certificate an issuer signs. */
export interface IssuerOptions {
  /** URL written into the CRL distribution point extension of every leaf certificate. */
  crlUrl?: string
}

/**
 * Issues certificates with an ECDSA P-256 CA key that stays inside the HSM cluster. Every
 * signature is one C_Sign on a cluster member.
 */
export class CertificateIssuer {
  private readonly crypto: Crypto

  constructor(
    private readonly cluster: HsmCluster,
    private readonly caKeyId: Buffer,
    private readonly caCertificate: x509.X509Certificate,
    private readonly options: IssuerOptions = {},
  ) {
    this.crypto = hsmWebCrypto(cluster)
  }

  /** Creates a self-signed root CA certificate for the HSM key under `keyId`. */
  static async createRoot(
    cluster: HsmCluster,
    keyId: Buffer,
    commonName: string,
    lifetimeMs: number,
  ): Promise<x509.X509Certificate> {
    const crypto = hsmWebCrypto(cluster)
    const publicKey = await importPublicKey(await cluster.publicKeySpki(keyId))
    const notBefore = new Date(Date.now() - 60_000)
    return x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: randomSerial(),
        name: `CN=${commonName}, O=hsmgate`,
        notBefore,
        notAfter: new Date(notBefore.getTime() + lifetimeMs),
        signingAlgorithm: ECDSA_SHA256,
        keys: { publicKey, privateKey: hsmSigningKey(keyId) },
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
            true,
          ),
          await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
        ],
      },
      crypto,
    )
  }

  /** Issues a leaf certificate signed by the CA key in the HSM. */
  async issue(request: LeafRequest): Promise<x509.X509Certificate> {
    const publicKey = await importPublicKey(request.publicKeySpki)
    const notBefore = new Date(Date.now() - 60_000)
    const usage =
      request.purpose === 'server'
        ? x509.ExtendedKeyUsage.serverAuth
        : x509.ExtendedKeyUsage.clientAuth
    return x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerial(),
        subject: `CN=${request.commonName}, O=hsmgate`,
        issuer: this.caCertificate.subject,
        notBefore,
        notAfter: new Date(notBefore.getTime() + request.lifetimeMs),
        signingAlgorithm: ECDSA_SHA256,
        publicKey,
        signingKey: hsmSigningKey(this.caKeyId),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([usage], false),
          new x509.SubjectAlternativeNameExtension(altNameEntries(request.altNames), false),
          await x509.SubjectKeyIdentifierExtension.create(publicKey, false, this.crypto),
          await x509.AuthorityKeyIdentifierExtension.create(this.caCertificate, false, this.crypto),
          ...(request.keyProtection === undefined
            ? []
            : [
                new x509.Extension(
                  KEY_PROTECTION_OID,
                  false,
                  new Uint8Array(encodeKeyProtection(request.keyProtection)),
                ),
              ]),
          ...(this.options.crlUrl === undefined
            ? []
            : [new x509.CRLDistributionPointsExtension([this.options.crlUrl], false)]),
        ],
      },
      this.crypto,
    )
  }
}
