import pkcs11js from 'pkcs11js'

/** The CKA_ID and CKA_LABEL under which a key exists on every member. */
export interface KeyRef {
  id: Buffer
  label: string
}

/** DER of the OID 1.2.840.10045.3.1.7 (P-256). */
export const P256_EC_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex')

export const KEK_LABEL = 'hsmgate:cluster-kek'
/** Fixed CKA_ID of the cluster key-encryption key; application keys use random 16-byte ids. */
export const KEK_ID = Buffer.from(KEK_LABEL, 'ascii')

type Template = pkcs11js.Template

function identity(ref: KeyRef): Template {
  return [
    { type: pkcs11js.CKA_ID, value: ref.id },
    { type: pkcs11js.CKA_LABEL, value: ref.label },
  ]
}

/**
 * Template of the cluster KEK as C_CreateObject imports it. With `trusted`, the security officer
 * creates it as a public session object (SoftHSM2 lets the SO create neither private objects,
 * CKR_USER_NOT_LOGGED_IN, nor stores public token objects encrypted), and the user then copies
 * it into a private token object. Without `trusted`, the user creates the private token object.
 */
export function kekImportTemplate(value: Buffer, trusted: boolean): Template {
  const template: Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: !trusted },
    { type: pkcs11js.CKA_PRIVATE, value: !trusted },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_VALUE, value },
    ...identity({ id: KEK_ID, label: KEK_LABEL }),
  ]
  if (trusted) template.push({ type: pkcs11js.CKA_TRUSTED, value: true })
  return template
}

/** C_CopyObject template that turns the SO's session KEK into a private token object. */
export const KEK_COPY_TEMPLATE: Template = [
  { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_PRIVATE, value: true },
]
