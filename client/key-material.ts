import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

/** Key types the agent can generate. */
export const AGENT_KEY_TYPES = ['ec-p256', 'rsa-2048', 'rsa-3072'] as const
export type AgentKeyType = (typeof AGENT_KEY_TYPES)[number]

/** A new private key, as PKCS#8 PEM, and a CSR signed with it. */
export interface KeyAndCsr {
  readonly keyPem: string
  readonly csrPem: string
}

function algorithmOf(type: AgentKeyType): RsaHashedKeyGenParams | EcKeyGenParams {
  if (type === 'ec-p256') return { name: 'ECDSA', namedCurve: 'P-256' }
  return {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength: type === 'rsa-2048' ? 2048 : 3072,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  }
}

/**
 * Generates a software key pair and a PKCS#10 request signed with it. The CSR's subject is a
 * fixed placeholder: the gateway ignores it and takes every name from its own records.
 */
export async function newKeyAndCsr(type: AgentKeyType): Promise<KeyAndCsr> {
  const algorithm = algorithmOf(type)
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: 'CN=hsmgate-agent',
      keys,
      signingAlgorithm: type === 'ec-p256' ? { name: 'ECDSA', hash: 'SHA-256' } : algorithm,
    },
    webcrypto as Crypto,
  )
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  return { keyPem: toPem(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem') }
}

function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}
