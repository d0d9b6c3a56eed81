import {
  chmodSync,
  chownSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
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
 * Creates the SDS directory, or sets an existing one, for the readers of the SDS files: with
 * `groupId` (socket_group) mode 0750 and that group, so that an Envoy running as another user in
 * the group can read them, else mode 0700. writeSdsFile takes the group from the directory.
 */
export function prepareSdsDirectory(runtimeDir: string, groupId: number | undefined): void {
  const { dir } = sdsPaths(runtimeDir)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (groupId !== undefined) chownSync(dir, -1, groupId)
  chmodSync(dir, groupId === undefined ? 0o700 : 0o750)
}

/**
 * Writes one SDS resource file atomically. The serving secret contains a private key, so the
 * file has mode 0600, or 0640 with the directory's group when prepareSdsDirectory opened the
 * directory to a group. The rename is the move that Envoy's directory watch reacts to.
 */
export function writeSdsFile(path: string, secret: object): void {
  const dir = resolve(path, '..')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const { mode, gid } = statSync(dir)
  const content = JSON.stringify({ resources: [secret] })
  if ((mode & 0o070) === 0) writeFileAtomic(path, content, 0o600)
  else writeFileAtomic(path, content, 0o640, gid)
}

/**
 * Writes a file through a temporary file in the same directory and a rename, so that readers
 * see the old or the new content, never a part. A new directory is created with mode 0700.
 * With `groupId` the file gets that group before it is renamed into place.
 */
export function writeFileAtomic(
  path: string,
  content: string,
  mode: number,
  groupId?: number,
): void {
  const dir = resolve(path, '..')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const temporary = join(dir, `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    writeFileSync(temporary, content, { mode, flag: 'wx' })
    if (groupId !== undefined) {
      chownSync(temporary, -1, groupId)
      // The umask may have removed the group bits of `mode`.
      chmodSync(temporary, mode)
    }
    renameSync(temporary, path)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}
