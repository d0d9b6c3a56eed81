import { createHash, createPublicKey } from 'node:crypto'
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Logger } from '../../log/logger.js'
import { TrustedAuditKeys } from '../../store/audit-checkpoint.js'
import type { HsmCluster } from '../hsm/index.js'
import { rawToDer } from '../keys/ecdsa-signature.js'

/** The HSM-resident key that signs audit checkpoints. */
export interface AuditKey {
  /** CKA_ID in lowercase hex. */
  keyId: string
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem: string
  /** Signs `data` with ECDSA P-256 over its SHA-256 digest; returns the DER signature. */
  sign(data: Buffer): Promise<Buffer>
}

/**
 * Returns the CKA_ID of a node's audit key: the first 16 bytes of a SHA-256 over a fixed label
 * and the node id, so every start of the node finds the same key without stored state.
 */
export function auditKeyId(nodeId: string): Buffer {
  return createHash('sha256').update(`hsmgate-audit-key\0${nodeId}`).digest().subarray(0, 16)
}

/**
 * Opens the node's audit key, generating it on the HSM cluster when no member has it. The key
 * is an EC P-256 pair made like the issuing CA key: the private half is sensitive and leaves an
 * HSM only wrapped under the cluster key-encryption key, to replicate to the other members.
 */
export async function openAuditKey(
  cluster: HsmCluster,
  nodeId: string,
  logger: Logger,
): Promise<AuditKey> {
  const id = auditKeyId(nodeId)
  let spki: Buffer
  if (await cluster.hasKey(id)) {
    spki = await cluster.publicKeySpki(id)
  } else {
    spki = await cluster.generateEcKeyPair({ id, label: `hsmgate:audit:${nodeId}` }, 'P-256')
    logger.info({ key_id: id.toString('hex') }, 'audit checkpoint key generated in the HSM')
  }
  const publicKeyPem = createPublicKey({ key: spki, format: 'der', type: 'spki' })
    .export({ type: 'spki', format: 'pem' })
    .toString()
  return {
    keyId: id.toString('hex'),
    publicKeyPem,
    sign: async (data) => {
      const digest = createHash('sha256').update(data).digest()
      return rawToDer(await cluster.signEcdsa(id, digest))
    },
  }
}

/**
 * Adds the public key to the PEM file of trusted audit keys unless the file contains it already.
 * Returns true when it added the key.
 */
export function publishAuditPublicKey(file: string, publicKeyPem: string): boolean {
  const trusted = new TrustedAuditKeys()
  if (existsSync(file)) trusted.addPem(readFileSync(file, 'utf8'))
  if (trusted.trusts(publicKeyPem)) return false
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
  appendFileSync(file, publicKeyPem.endsWith('\n') ? publicKeyPem : `${publicKeyPem}\n`, {
    mode: 0o644,
  })
  return true
}
