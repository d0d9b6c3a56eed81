import pkcs11js from 'pkcs11js'

/** The CKA_ID and CKA_LABEL under which a key exists on every member. */
export interface KeyRef {
  id: Buffer
  label: string
}

/** DER of the OID 1.2.840.10045.3.1.7 (P-256), the CKA_EC_PARAMS of every EC key here. */
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
 * Returns the attributes that let a key be copied to the other members. SoftHSM2 2.6.1 wraps only keys
 * with CKA_EXTRACTABLE true (a non-extractable key gives CKR_KEY_UNEXTRACTABLE even under a
 * trusted wrapping key). CKA_WRAP_WITH_TRUSTED true then limits wrapping to keys with
 * CKA_TRUSTED true, which only the security officer can create: SoftHSM2 returns
 * CKR_KEY_NOT_WRAPPABLE for any other wrapping key and rejects a later change back to false.
 */
function replicationAttributes(wrapWithTrusted: boolean): Template {
  // NOTE: with wrapWithTrusted false (a cluster KEK provisioned without SO PINs), whoever has the
  // user PIN can wrap these keys under a key of their own and so take the key material out of
  // the HSM. Provisioning the KEK with SO PINs closes that gap.
  return [
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_WRAP_WITH_TRUSTED, value: wrapWithTrusted },
  ]
}

export function ecPublicTemplate(ref: KeyRef): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: false },
    { type: pkcs11js.CKA_VERIFY, value: true },
    { type: pkcs11js.CKA_EC_PARAMS, value: P256_EC_PARAMS },
    ...identity(ref),
  ]
}

/** Template of the public key object that a member receives: the source's CKA_EC_POINT added. */
export function ecPublicImportTemplate(ref: KeyRef, ecPoint: Buffer): Template {
  return [...ecPublicTemplate(ref), { type: pkcs11js.CKA_EC_POINT, value: ecPoint }]
}

/** Private key template, for C_GenerateKeyPair and for C_UnwrapKey on the other members. */
export function ecPrivateTemplate(ref: KeyRef, wrapWithTrusted: boolean): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_SIGN, value: true },
    { type: pkcs11js.CKA_DERIVE, value: false },
    ...replicationAttributes(wrapWithTrusted),
    ...identity(ref),
  ]
}

/** AES key template for C_UnwrapKey; `aesGenerateTemplate` adds the length for C_GenerateKey. */
export function aesTemplate(ref: KeyRef, wrapWithTrusted: boolean): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    ...replicationAttributes(wrapWithTrusted),
    ...identity(ref),
  ]
}

export function aesGenerateTemplate(ref: KeyRef, bits: number, wrapWithTrusted: boolean): Template {
  return [...aesTemplate(ref, wrapWithTrusted), { type: pkcs11js.CKA_VALUE_LEN, value: bits / 8 }]
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
