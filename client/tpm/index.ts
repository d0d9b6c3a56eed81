export { checkTcti, DEFAULT_TCTI } from './tcti.js'
export {
  activateCredential,
  encodeCredentialFile,
  type ActivationChallenge,
} from './credential-activation.js'
export { readEkCertificate, type EkAlgorithm, type EkCertificate } from './ek-certificate.js'
export { sendWithActivation, type TpmRequestSender } from './tpm-exchange.js'
export {
  attestationKeyPublic,
  createAttestedKey,
  DEFAULT_TPM_SETTINGS,
  handleText,
  type AttestedKey,
  type TpmSettings,
} from './tpm-key.js'
export { fetchNonce, postJsonWithTpmKey, TPM_OPENSSL_CONF } from './tpm-request.js'
export { renewWithTpm } from './tpm-renewal.js'
export { readTpmSettings, writeTpmSettings, type TpmAgentSettings } from './tpm-settings.js'
