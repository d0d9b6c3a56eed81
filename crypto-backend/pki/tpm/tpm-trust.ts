import type { X509Certificate } from 'node:crypto'
import type { GatewayConfig } from '../../../config/schema.js'
import { loadManufacturerCas } from './ek-certificate.js'

/** Which evidence makes an attestation key trusted; `pki.tpm_trust` in the config. */
export type TpmTrustMode = NonNullable<GatewayConfig['pki']['tpm_trust']>

/** The gateway's TPM attestation settings, with the manufacturer CA bundle already parsed. */
export interface TpmTrust {
  readonly mode: TpmTrustMode
  /** Manufacturer CAs for EK certificates; empty in mode 'registered-ak'. */
  readonly manufacturerCas: readonly X509Certificate[]
  /** Maximum unexpired, unused nonces per client address. */
  readonly noncesPerSource: number
  /** Maximum unexpired, unused nonces over all client addresses. */
  readonly noncesTotal: number
}

/** Settings of a backend without TPM configuration. */
export const DEFAULT_TPM_TRUST: TpmTrust = {
  mode: 'registered-ak',
  manufacturerCas: [],
  noncesPerSource: 16,
  noncesTotal: 1024,
}

/**
 * Reads the TPM settings of the `pki` config section and parses the manufacturer CA bundle.
 * Throws Error naming `pki.tpm_manufacturer_cas` when the bundle is unreadable or contains a
 * certificate that is not a CA, so that the backend does not start with a broken trust path.
 */
export function tpmTrustOf(pki: GatewayConfig['pki']): TpmTrust {
  const key = 'pki.tpm_manufacturer_cas'
  const mode = pki.tpm_trust ?? DEFAULT_TPM_TRUST.mode
  const file = pki.tpm_manufacturer_cas
  if (mode !== 'registered-ak' && file === undefined) {
    throw new Error(`${key} is required when pki.tpm_trust is '${mode}'`)
  }
  const manufacturerCas = file === undefined ? [] : loadManufacturerCas(file, key)
  return {
    mode,
    manufacturerCas,
    noncesPerSource: pki.tpm_nonces_per_source ?? DEFAULT_TPM_TRUST.noncesPerSource,
    noncesTotal: pki.tpm_nonces_total ?? DEFAULT_TPM_TRUST.noncesTotal,
  }
}
