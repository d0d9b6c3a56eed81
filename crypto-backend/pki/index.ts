export { CertificateIssuer, type LeafRequest, type SubjectAltNames } from './certificate-issuer.js'
export { hsmSigningKey, hsmWebCrypto } from './hsm-webcrypto.js'
