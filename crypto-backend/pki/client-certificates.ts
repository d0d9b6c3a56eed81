import type { LoadedConfig } from '../../config/load.js'
import type { KeyProtection, Store } from '../../store/store.js'
import type { HsmCluster } from '../hsm/index.js'
import { durationMs } from './duration.js'
import { chainPem, openIssuingCa, type IssuingCa } from './issuing-ca.js'
import type { IssuingCaSource } from './issuing-ca-source.js'
import { normalizeSerial } from '../../store/certificate-serial.js'

/** The binding of a client certificate: its application, host name and host addresses. */
export interface ClientBinding {
  readonly app: string
  readonly host: string
  readonly addresses: readonly string[]
}

/** A newly issued client certificate. */
export interface IssuedClientCertificate {
  readonly serial: string
  /** The leaf and the CA certificates above it, PEM. */
  readonly chainPem: string
  readonly notBefore: Date
  readonly notAfter: Date
}

/**
 * Issues the client certificates of enrollment and renewal and records each in the store. The
 * names come from the binding only: the URI SAN spiffe://<trust domain>/app/<app>, the host as
 * DNS SAN, the addresses as IP SANs, the clientAuth EKU and the key-protection extension.
 */
export class ClientCertificates {
  constructor(
    /** Returns the issuing CA in force, read at each issuance so that a CA switch applies. */
    private readonly issuingCa: () => IssuingCa,
    private readonly store: Pick<Store, 'putCertificate'>,
    private readonly trustDomain: string,
    private readonly lifetimeMs: number,
  ) {}

  /** The principal authz signs enrollment decisions for; the enrollment listener only. */
  get enrollmentPrincipal(): string {
    return `spiffe://${this.trustDomain}/hsmgate/enrollment`
  }

  /** Returns the application an application principal names, or undefined for others. */
  appOf(principal: string): string | undefined {
    const prefix = `spiffe://${this.trustDomain}/app/`
    return principal.startsWith(prefix) ? principal.slice(prefix.length) : undefined
  }

  async issue(
    binding: ClientBinding,
    publicKeySpki: Buffer,
    keyProtection: KeyProtection,
  ): Promise<IssuedClientCertificate> {
    const ca = this.issuingCa()
    const leaf = await ca.issuer.issue({
      commonName: binding.app,
      purpose: 'client',
      altNames: {
        uri: [`spiffe://${this.trustDomain}/app/${binding.app}`],
        dns: binding.host === '' ? [] : [binding.host],
        ip: [...binding.addresses],
      },
      lifetimeMs: this.lifetimeMs,
      publicKeySpki,
      keyProtection,
    })
    const serial = normalizeSerial(leaf.serialNumber)
    await this.store.putCertificate({
      serial,
      app: binding.app,
      host: binding.host,
      addresses: [...binding.addresses],
      notBefore: leaf.notBefore.toISOString(),
      notAfter: leaf.notAfter.toISOString(),
      keyProtection,
      status: 'active',
      revokedAt: null,
      revocationReason: null,
      issuedAt: new Date().toISOString(),
    })
    return {
      serial,
      chainPem: chainPem(leaf, ca),
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    }
  }
}

/**
 * Shortest client-certificate lifetime. Certificates carry a notBefore one minute in the past,
 * so with a lifetime under a few minutes an agent's two-thirds renewal point would fall at once
 * and it would renew without pause.
 */
export const MIN_CLIENT_LIFETIME_MS = 5 * 60_000

/** Checks pki.client_lifetime, naming the value and the limit. */
export function checkClientLifetime(text: string): void {
  if (durationMs(text) < MIN_CLIENT_LIFETIME_MS) {
    throw new RangeError(
      `pki.client_lifetime '${text}' is shorter than 5m; set at least 5m (default 1h)`,
    )
  }
}

/**
 * Opens the client certificate issuer of a setup: its issuing CA and pki.client_lifetime. With
 * `source`, it issues under the CA that the source has at that time, so it follows a CA switch.
 */
export async function openClientCertificates(
  config: LoadedConfig,
  cluster: HsmCluster,
  store: Pick<Store, 'putCertificate'>,
  source?: IssuingCaSource,
): Promise<ClientCertificates> {
  checkClientLifetime(config.pki.client_lifetime)
  const fixed = source === undefined ? await openIssuingCa(config, cluster) : undefined
  return new ClientCertificates(
    () => fixed ?? source!.current,
    store,
    config.trust_domain,
    durationMs(config.pki.client_lifetime),
  )
}
