import pkcs11js from 'pkcs11js'
import { callSync } from './errors.js'

/** At most this many handles are read for one CKA_ID and class, to notice duplicates. */
const MAX_MATCHES = 2

/**
 * Finds the object with this CKA_ID and CKO class on the session's token (C_FindObjectsInit,
 * C_FindObjects, C_FindObjectsFinal). Returns the first match, or undefined when none exists.
 */
export function findObject(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  member: string,
  id: Buffer,
  objectClass: number,
): pkcs11js.Handle | undefined {
  return findObjects(pkcs11, session, member, id, objectClass, MAX_MATCHES)[0]
}

/** Returns up to `limit` handles of objects with this CKA_ID and CKO class. */
export function findObjects(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  member: string,
  id: Buffer,
  objectClass: number,
  limit: number,
): pkcs11js.Handle[] {
  const template = [
    { type: pkcs11js.CKA_CLASS, value: objectClass },
    { type: pkcs11js.CKA_ID, value: id },
  ]
  callSync(member, 'C_FindObjectsInit', () => pkcs11.C_FindObjectsInit(session, template))
  try {
    return callSync(member, 'C_FindObjects', () => pkcs11.C_FindObjects(session, limit))
  } finally {
    try {
      pkcs11.C_FindObjectsFinal(session)
    } catch {
      // A failed C_FindObjects already ended the search or the session is gone; the original
      // error is the one to report.
    }
  }
}

/** Reads attributes of one object; each value is returned in the order of `types`. */
export function readAttributes(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  member: string,
  handle: pkcs11js.Handle,
  types: number[],
): Buffer[] {
  const template = types.map((type) => ({ type }))
  const result = callSync(member, 'C_GetAttributeValue', () =>
    pkcs11.C_GetAttributeValue(session, handle, template),
  )
  return result.map((attribute) => attribute.value)
}

/** Destroys an object and ignores failures; used to roll back a half-finished generation. */
export function destroyQuietly(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  handle: pkcs11js.Handle,
): boolean {
  try {
    pkcs11.C_DestroyObject(session, handle)
    return true
  } catch {
    return false
  }
}
