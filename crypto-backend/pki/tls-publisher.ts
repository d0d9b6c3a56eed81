import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type * as x509 from '@peculiar/x509'
import type { LoadedConfig } from '../../config/load.js'
import type { Store } from '../../store/store.js'
import type { HsmCluster } from '../hsm/index.js'
import { buildCrl, crlPem } from './crl-builder.js'
import { durationMs } from './duration.js'
import { chainPem, openIssuingCa, type IssuingCa } from './issuing-ca.js'
import {
  sdsPaths,
  servingSecret,
  validationSecret,
  writeFileAtomic,
  writeSdsFile,
} from './sds-files.js'

/** Shortest serving-certificate lifetime; leaves carry a notBefore one minute in the past. */
export const MIN_SERVING_LIFETIME_MS = 5 * 60_000

/** Checks tls.server_cert_lifetime, naming the value and the limit. */
export function checkServingLifetime(text: string): void {
  if (durationMs(text) < MIN_SERVING_LIFETIME_MS) {
    throw new RangeError(
      `tls.server_cert_lifetime '${text}' is shorter than 5m; set at least 5m (default 24h)`,
    )
  }
}

/** Addresses the serving certificate names: the listen address, or loopback for a wildcard. */
function servingAddresses(config: LoadedConfig): string[] {
  const address = config.listen.address
  if (address === '0.0.0.0' || address === '::') return ['127.0.0.1', '::1']
  return [...new Set([address, '127.0.0.1', '::1'])]
}

/** Returns the path of the public PEM copy of the CRL, next to the CA certificate. */
export function crlFile(config: LoadedConfig): string {
  return join(dirname(config.pki.ca_cert), 'crl.pem')
}

/**
 * Issues a new serving certificate for the gateway with a fresh software P-256 key, signed by
 * the CA key in the HSM, and writes chain and key to the serving SDS file. Envoy cannot sign
 * through PKCS#11, so this key is in software; its short lifetime bounds the harm of a leak.
 */
export async function publishServingCertificate(
  config: LoadedConfig,
  ca: IssuingCa,
): Promise<x509.X509Certificate> {
  checkServingLifetime(config.tls.server_cert_lifetime)
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const leaf = await ca.issuer.issue({
    commonName: 'hsmgate gateway',
    purpose: 'server',
    altNames: { dns: config.tls.server_dns_names, ip: servingAddresses(config) },
    lifetimeMs: durationMs(config.tls.server_cert_lifetime),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
  })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  writeSdsFile(sdsPaths(config.runtime_dir).serving, servingSecret(chainPem(leaf, ca), keyPem))
  return leaf
}

/**
 * Builds a CRL of every revoked, unexpired certificate in the store, signed by the CA key in the
 * HSM, and writes it with the trust bundle to the validation SDS file, and as PEM next to the CA
 * certificate.
 */
export async function publishValidation(
  config: LoadedConfig,
  ca: IssuingCa,
  cluster: HsmCluster,
  store: Pick<Store, 'revokedCertificates'>,
  now = new Date(),
): Promise<x509.X509Crl> {
  const crl = await buildCrl({
    cluster,
    caKeyId: ca.keyId,
    caCertificate: ca.certificate,
    revoked: await store.revokedCertificates(now.toISOString()),
    now,
    lifetimeMs: durationMs(config.pki.crl_lifetime),
  })
  const bundle = readFileSync(config.tls.trust_bundle, 'utf8')
  writeSdsFile(sdsPaths(config.runtime_dir).validation, validationSecret(bundle, crlPem(crl)))
  writeFileAtomic(crlFile(config), crlPem(crl), 0o644)
  return crl
}

/** Opens the issuing CA and publishes both SDS files, for a command that changes either. */
export async function publishAll(
  config: LoadedConfig,
  cluster: HsmCluster,
  store: Pick<Store, 'revokedCertificates'>,
): Promise<{ serving: x509.X509Certificate; crl: x509.X509Crl }> {
  const ca = await openIssuingCa(config, cluster)
  const crl = await publishValidation(config, ca, cluster, store)
  return { serving: await publishServingCertificate(config, ca), crl }
}
