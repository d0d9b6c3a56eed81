import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import type { HsmCluster } from '../hsm/index.js'
import { checkCaProfile } from './ca-chain-check.js'
import { openIssuingCa, type IssuingCa } from './issuing-ca.js'

/** A new issuing CA named in hsmgate.yaml that the running gateway cannot use. */
export class IssuingCaSwitchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IssuingCaSwitchError'
  }
}

/**
 * Returns a digest of what names the issuing CA: pki.ca_key_id and the contents of pki.ca_cert
 * and pki.ca_chain. The trust bundle is left out because `hsmgate ca import` rewrites it in
 * place before hsmgate.yaml. The switch follows the config file, which it writes last.
 */
function caFingerprint(config: LoadedConfig): string {
  const hash = createHash('sha256').update(config.pki.ca_key_id).update('\0')
  for (const path of [config.pki.ca_cert, config.pki.ca_chain]) {
    hash.update(path === undefined ? '' : readFileSync(path)).update('\0')
  }
  return hash.digest('hex')
}

/**
 * The issuing CA of a running gateway, which follows hsmgate.yaml. `hsmgate ca import` writes the
 * new CA's files and then points hsmgate.yaml at them. refresh() notices that, checks the new CA
 * and switches to it, so the backend issues under the new CA without a restart.
 */
export class IssuingCaSource {
  private rejected = ''

  private constructor(
    private active: LoadedConfig,
    private ca: IssuingCa,
    private fingerprint: string,
    private readonly cluster: HsmCluster,
  ) {}

  /** Opens the issuing CA that `config` names. */
  static async open(config: LoadedConfig, cluster: HsmCluster): Promise<IssuingCaSource> {
    const ca = await openIssuingCa(config, cluster)
    return new IssuingCaSource(config, ca, caFingerprint(config), cluster)
  }

  /** The issuing CA in force. */
  get current(): IssuingCa {
    return this.ca
  }

  /** The configuration whose pki and tls settings are in force. */
  get config(): LoadedConfig {
    return this.active
  }

  /**
   * Reads hsmgate.yaml again and, when it names another issuing CA, checks that the HSM contains
   * the key the new certificate certifies and that the certificate is a CA, then switches.
   * Returns true after a switch. Throws IssuingCaSwitchError, keeping the old CA, when the new
   * one is unusable, but only once for each rejected configuration.
   */
  async refresh(): Promise<boolean> {
    const next = loadConfig(this.active.file)
    const fingerprint = caFingerprint(next)
    if (fingerprint === this.fingerprint || fingerprint === this.rejected) return false
    let ca: IssuingCa
    try {
      ca = await openIssuingCa(next, this.cluster)
      await this.checkKey(ca)
      checkCaProfile(ca.certificate)
    } catch (error) {
      this.rejected = fingerprint
      throw new IssuingCaSwitchError(
        `the issuing CA that ${next.file} now names cannot be used, so the gateway keeps ` +
          `issuing under ${this.ca.certificate.subject}: ${(error as Error).message}`,
        { cause: error },
      )
    }
    this.active = next
    this.ca = ca
    this.fingerprint = fingerprint
    return true
  }

  private async checkKey(ca: IssuingCa): Promise<void> {
    const hsmKey = await this.cluster.publicKeySpki(ca.keyId)
    if (!Buffer.from(ca.certificate.publicKey.rawData).equals(hsmKey)) {
      throw new Error(
        `pki.ca_cert certifies a different key than the HSM key ${ca.keyId.toString('hex')} ` +
          'named by pki.ca_key_id',
      )
    }
  }
}
