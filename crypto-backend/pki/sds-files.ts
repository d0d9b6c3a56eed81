import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret'

/** Names of the two SDS secrets, as the Envoy listener refers to them. */
export const SDS_SECRET = { serving: 'hsmgate_serving_cert', validation: 'hsmgate_client_ca' }

/** Returns the paths of the SDS resource files, in a private directory of the runtime directory. */
export function sdsPaths(runtimeDir: string): { dir: string; serving: string; validation: string } {
  const dir = resolve(runtimeDir, 'tls')
  return { dir, serving: join(dir, 'serving.json'), validation: join(dir, 'validation.json') }
}

/** Builds the serving certificate secret: the chain (leaf first) and the key, PEM and inline. */
export function servingSecret(chainPem: string, keyPem: string): object {
  return {
    '@type': SECRET_TYPE,
    name: SDS_SECRET.serving,
    tls_certificate: {
      certificate_chain: { inline_string: chainPem },
      private_key: { inline_string: keyPem },
    },
  }
}

/**
 * Builds the client validation secret: the trust bundle and the issuing CA's CRL. Only the
 * leaf's CRL is checked, because the gateway publishes a CRL for its own CA only. With an
 * intermediate CA the root's CRL is not available to the gateway.
 */
export function validationSecret(trustBundlePem: string, crlPem: string): object {
  return {
    '@type': SECRET_TYPE,
    name: SDS_SECRET.validation,
    validation_context: {
      trusted_ca: { inline_string: trustBundlePem },
      crl: { inline_string: crlPem },
      only_verify_leaf_cert_crl: true,
    },
  }
}

/**
 * Writes one SDS resource file atomically, mode 0600, because the serving secret contains a
 * private key. The rename is the move that Envoy's directory watch reacts to.
 */
export function writeSdsFile(path: string, secret: object): void {
  writeFileAtomic(path, JSON.stringify({ resources: [secret] }), 0o600)
}

/**
 * Writes a file through a temporary file in the same directory and a rename, so that readers
 * see the old or the new content, never a part. A new directory is created with mode 0700.
 */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  const dir = resolve(path, '..')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const temporary = join(dir, `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    writeFileSync(temporary, content, { mode, flag: 'wx' })
    renameSync(temporary, path)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}
