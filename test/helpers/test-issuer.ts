import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import { HsmCluster } from '../../crypto-backend/hsm/index.js'
import type { LeafPurpose, SubjectAltNames } from '../../crypto-backend/pki/certificate-issuer.js'
import { openIssuingCa } from '../../crypto-backend/pki/issuing-ca.js'
import { createLogger } from '../../log/logger.js'

/**
 * Issues a certificate with a setup's HSM CA through the gateway's own issuing code, with a
 * fresh software key, and writes `NAME.crt` and `NAME.key` to `outDir`.
 */
export async function issueWithSetupCa(
  dir: string,
  outDir: string,
  name: string,
  purpose: LeafPurpose,
  altNames: SubjectAltNames,
): Promise<{ cert: string; key: string; serial: string }> {
  const config = loadConfig(join(dir, 'hsmgate.yaml'))
  const cluster = await HsmCluster.open(config.hsm.members, {
    logger: createLogger('test-issuer', 'warn'),
    environment: config.hsm.environment,
  })
  try {
    const ca = await openIssuingCa(config, cluster)
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const leaf = await ca.issuer.issue({
      commonName: name,
      purpose,
      altNames,
      lifetimeMs: 3_600_000,
      publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    })
    const cert = join(outDir, `${name}.crt`)
    const key = join(outDir, `${name}.key`)
    writeFileSync(cert, leaf.toString('pem') + '\n')
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    return { cert, key, serial: leaf.serialNumber }
  } finally {
    await cluster.close()
  }
}
