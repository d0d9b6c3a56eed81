/** Operations that act on one named key. */
export const KEYED_OPERATIONS = [
  'describe-key',
  'sign',
  'verify',
  'encrypt',
  'decrypt',
  'hmac',
  'hmac-verify',
  'wrap',
  'unwrap',
  'data-key',
  'create-key',
  'rotate-key',
  'disable-key',
  'enable-key',
  'destroy-key',
] as const

/** Operations that take no key. */
export const KEYLESS_OPERATIONS = [
  'list-keys',
  'random',
  'health',
  'renew',
  'enroll',
  'crl',
] as const

/** Every operation name that rules may grant. */
export const OPERATIONS = [...KEYLESS_OPERATIONS, ...KEYED_OPERATIONS] as const

export type KeyedOperationName = (typeof KEYED_OPERATIONS)[number]
export type KeylessOperationName = (typeof KEYLESS_OPERATIONS)[number]
export type OperationName = (typeof OPERATIONS)[number]

/** An operation resolved from a request. Keyed operations carry the key name from the path. */
export type Operation =
  | { readonly name: KeylessOperationName }
  | { readonly name: KeyedOperationName; readonly key: string }

/** A request that maps to no operation, with the HTTP status and error code to return. */
export interface RouteError {
  readonly status: 400 | 404
  readonly code: 'invalid_key_name' | 'unknown_route'
  /** Text safe to return to the client. */
  readonly message: string
}

export type RouteResult =
  | { readonly ok: true; readonly operation: Operation }
  | { readonly ok: false; readonly error: RouteError }

/** Key names: lowercase letters, digits and hyphens, 1 to 64 characters. */
export const KEY_NAME_PATTERN = /^[a-z0-9-]{1,64}$/

const KEYLESS_ROUTES: ReadonlyMap<string, KeylessOperationName> = new Map([
  ['GET /v1/keys', 'list-keys'],
  ['POST /v1/random', 'random'],
  ['GET /v1/health', 'health'],
  ['POST /v1/certs/renew', 'renew'],
  ['GET /v1/crl', 'crl'],
])

/** The enrollment route, which only the enrollment listener maps. */
export const ENROLL_ROUTE = 'POST /v1/enroll'

/** The TPM attestation nonce for enrollment and renewal; also the `enroll` action. */
export const ENROLL_NONCE_ROUTE = 'POST /v1/enroll/nonce'

/** The CRL, which certificates name as their distribution point on the enrollment listener. */
export const CRL_ROUTE = 'GET /v1/crl'

/** Maximum path length. Longer paths are unknown routes. */
const MAX_PATH_LENGTH = 2048

export function isKeyedOperation(name: OperationName): name is KeyedOperationName {
  return (KEYED_OPERATIONS as readonly string[]).includes(name)
}

/**
 * Maps an HTTP method and request target to an operation. The query string and fragment are
 * ignored. The path is matched as sent, without percent-decoding, so an encoded key name is
 * an invalid key name. Methods are case-sensitive, as in HTTP.
 */
export function resolveOperation(method: string, target: string): RouteResult {
  const path = stripQuery(target)
  if (path.length > MAX_PATH_LENGTH) {
    return unknownRoute(method, '(path too long)')
  }

  const keyless = KEYLESS_ROUTES.get(`${method} ${path}`)
  if (keyless !== undefined) {
    return { ok: true, operation: { name: keyless } }
  }

  // GET /v1/keys/{name} splits into ['', 'v1', 'keys', name] and
  // POST /v1/keys/{name}/{operation} into ['', 'v1', 'keys', name, operation].
  const segments = path.split('/')
  if (segments[0] === '' && segments[1] === 'v1' && segments[2] === 'keys') {
    const key = segments[3] as string
    const name = keyedRouteName(method, segments)
    if (name === undefined) {
      return unknownRoute(method, path)
    }
    if (!KEY_NAME_PATTERN.test(key)) {
      return {
        ok: false,
        error: {
          status: 400,
          code: 'invalid_key_name',
          message: 'key names are 1 to 64 lowercase letters, digits or hyphens',
        },
      }
    }
    return { ok: true, operation: { name, key } }
  }
  return unknownRoute(method, path)
}

/** The last path segment of POST /v1/keys/{name}/{segment} and the operation it names. */
const KEYED_ROUTES: ReadonlyMap<string, KeyedOperationName> = new Map([
  ['sign', 'sign'],
  ['verify', 'verify'],
  ['encrypt', 'encrypt'],
  ['decrypt', 'decrypt'],
  ['hmac', 'hmac'],
  ['hmac-verify', 'hmac-verify'],
  ['wrap', 'wrap'],
  ['unwrap', 'unwrap'],
  ['data-key', 'data-key'],
  ['create', 'create-key'],
  ['rotate', 'rotate-key'],
  ['disable', 'disable-key'],
  ['enable', 'enable-key'],
  ['destroy', 'destroy-key'],
])

/** Returns the keyed operation a /v1/keys/{name}[/{operation}] request names, if any. */
function keyedRouteName(method: string, segments: string[]): KeyedOperationName | undefined {
  if (segments.length === 4 && method === 'GET' && segments[3] !== '') return 'describe-key'
  if (segments.length !== 5 || method !== 'POST') return undefined
  return KEYED_ROUTES.get(segments[4] as string)
}

/**
 * Maps a request on the enrollment listener: POST /v1/enroll and POST /v1/enroll/nonce are
 * `enroll`, GET /v1/crl is `crl`, anything else is an unknown route. The query string is ignored, as in resolveOperation.
 */
export function resolveEnrollOperation(method: string, target: string): RouteResult {
  const path = stripQuery(target)
  const route = `${method} ${path}`
  if (route === ENROLL_ROUTE || route === ENROLL_NONCE_ROUTE) {
    return { ok: true, operation: { name: 'enroll' } }
  }
  if (route === CRL_ROUTE) return { ok: true, operation: { name: 'crl' } }
  return unknownRoute(method, path.length > MAX_PATH_LENGTH ? '(path too long)' : path)
}

/** Formats an operation for messages, such as `sign with key 'payments-signing'`. */
export function describeOperation(operation: Operation): string {
  return 'key' in operation ? `${operation.name} with key '${operation.key}'` : operation.name
}

function stripQuery(target: string): string {
  const end = target.search(/[?#]/)
  return end === -1 ? target : target.slice(0, end)
}

function unknownRoute(method: string, path: string): RouteResult {
  const route = `${method} ${path}`.slice(0, 200)
  return {
    ok: false,
    error: { status: 404, code: 'unknown_route', message: `no route for ${route}` },
  }
}
