export { CHALLENGE_LIFETIME_MS, type ChallengeMessage } from './activation.js'
export {
  parseTpmEvidence,
  redeemAttestationNonce,
  verifyCertifyEvidence,
  verifyTpmAttestation,
  type ActivationAnswer,
  type TpmEvidence,
  type VerifiedAttestation,
} from './attestation-check.js'
export { attestedProtection, type AttestationOutcome } from './attested-protection.js'
export { loadManufacturerCas, verifyEkCertificate, type TrustedEk } from './ek-certificate.js'
export { makeCredential, type MadeCredential } from './make-credential.js'
export { issueNonce, NONCE_LIFETIME_MS } from './tpm-nonce.js'
export { parseTpmPublic, type TpmPublic } from './tpm-public.js'
export { TpmFormatError, TpmReader } from './tpm-reader.js'
export { DEFAULT_TPM_TRUST, tpmTrustOf, type TpmTrust, type TpmTrustMode } from './tpm-trust.js'
