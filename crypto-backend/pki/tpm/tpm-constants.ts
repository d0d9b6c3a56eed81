/** TPM 2.0 constants from TCG TPM 2.0 Library Part 2 (Structures), as used by attestation. */

export const TPM_GENERATED_VALUE = 0xff544347
export const TPM_ST_ATTEST_CERTIFY = 0x8017

export const TPM_ALG = {
  rsa: 0x0001,
  sha1: 0x0004,
  sha256: 0x000b,
  sha384: 0x000c,
  sha512: 0x000d,
  null: 0x0010,
  ecdsa: 0x0018,
  ecc: 0x0023,
} as const

export const TPM_ECC_NIST_P256 = 0x0003

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const

/** Name algorithms the gateway accepts, with their Node hash name and digest length. */
export const NAME_ALGORITHMS: ReadonlyMap<number, { hash: string; length: number }> = new Map([
  [TPM_ALG.sha256, { hash: 'sha256', length: 32 }],
  [TPM_ALG.sha384, { hash: 'sha384', length: 48 }],
  [TPM_ALG.sha512, { hash: 'sha512', length: 64 }],
])

/** Names the set bits of a TPMA_OBJECT value, for messages. */
export function describeAttributes(value: number): string {
  const names = Object.entries(TPMA_OBJECT)
    .filter(([, bit]) => (value & bit) !== 0)
    .map(([name]) => name)
  return names.length === 0 ? '(none)' : names.join('|')
}
