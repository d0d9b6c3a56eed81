import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type * as x509 from '@peculiar/x509'
import { parseDocument } from 'yaml'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import type { HsmCluster } from '../../crypto-backend/hsm/index.js'
import { openIssuingCa } from '../../crypto-backend/pki/issuing-ca.js'
import { writeFileAtomic } from '../../crypto-backend/pki/sds-files.js'
import { probePrincipal } from '../init/demo-files.js'

/** The probe certificate lives as long as the demo client certificates that init issues. */
const PROBE_LIFETIME_MS = 30 * 86_400_000

/** Returns the file that records the pending CA key from `ca init --csr` until `ca import`. */
export function pendingFile(config: LoadedConfig): string {
  return join(config.dir, 'pki', 'ca-pending.json')
}

export interface PendingCa {
  key_id: string
  label: string
  subject: string
  created_at: string
}

export function readPending(config: LoadedConfig): PendingCa | undefined {
  try {
    return JSON.parse(readFileSync(pendingFile(config), 'utf8')) as PendingCa
  } catch {
    return undefined
  }
}

const pem = (certs: x509.X509Certificate[]): string =>
  certs.map((c) => c.toString('pem')).join('\n') + '\n'

/**
 * Makes `chain[0]`, whose key is the HSM key `keyId`, the setup's issuing CA: writes its
 * certificate, the certificates above it, and a trust bundle of the whole chain, then points
 * pki.ca_cert, pki.ca_key_id, pki.ca_chain and tls.trust_bundle in hsmgate.yaml at them. Every
 * file is replaced atomically; comments in hsmgate.yaml are kept.
 */
export function switchIssuingCa(
  config: LoadedConfig,
  keyId: string,
  chain: x509.X509Certificate[],
): Record<string, string> {
  const files = {
    ca_cert: join('pki', 'issuing-ca.crt'),
    ca_chain: join('pki', 'ca-chain.pem'),
    trust_bundle: join('pki', 'trust-bundle.pem'),
  }
  const at = (p: string): string => join(config.dir, p)
  writeFileAtomic(at(files.ca_cert), pem(chain.slice(0, 1)), 0o644)
  writeFileAtomic(at(files.ca_chain), pem(chain.slice(1)), 0o644)
  writeFileAtomic(at(files.trust_bundle), pem(chain), 0o644)

  const document = parseDocument(readFileSync(config.file, 'utf8'))
  document.setIn(['pki', 'ca_cert'], files.ca_cert)
  document.setIn(['pki', 'ca_key_id'], keyId)
  document.setIn(['pki', 'ca_chain'], files.ca_chain)
  document.setIn(['tls', 'trust_bundle'], files.trust_bundle)
  writeFileAtomic(config.file, document.toString(), 0o644)
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, at(v)]))
}

/**
 * Issues the readiness probe a new certificate from the new issuing CA, because `hsmgate up`
 * waits for the probe's request to pass and the old CA is no longer trusted.
 */
export async function reissueProbe(configFile: string, cluster: HsmCluster): Promise<string> {
  const config = loadConfig(configFile)
  const ca = await openIssuingCa(config, cluster)
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const leaf = await ca.issuer.issue({
    commonName: 'hsmgate probe',
    purpose: 'client',
    altNames: { uri: [probePrincipal(config.trust_domain)] },
    lifetimeMs: PROBE_LIFETIME_MS,
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
  })
  writeFileAtomic(
    config.probe.key,
    privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    0o600,
  )
  writeFileAtomic(config.probe.cert, leaf.toString('pem') + '\n', 0o644)
  return config.probe.cert
}
