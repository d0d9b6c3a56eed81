/** The CheckRequest fields that the handler reads, as @grpc/proto-loader decodes them. */
export interface CheckRequest {
  attributes?: {
    source?: {
      certificate?: string
      address?: { socket_address?: { address?: string } | null } | null
    } | null
    destination?: {
      address?: { socket_address?: { address?: string; port_value?: number } | null } | null
    } | null
    /** Set per route in the Envoy bootstrap; clients cannot set them. */
    context_extensions?: Record<string, string> | null
    request?: {
      http?: {
        id?: string
        method?: string
        path?: string
        headers?: Record<string, string>
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Uint8Array }[] } | null
        body?: string
        raw_body?: Uint8Array
      } | null
    } | null
  } | null
}

export type HttpRequest = NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']

/**
 * Returns the request headers by lowercase name, from `headers` or, when Envoy's
 * encode_raw_headers is set, from `header_map`. A name sent twice keeps its last value.
 */
export function collectHeaders(http: HttpRequest): Map<string, string> {
  const headers = new Map<string, string>()
  for (const [name, value] of Object.entries(http?.headers ?? {})) {
    headers.set(name.toLowerCase(), String(value))
  }
  for (const entry of http?.header_map?.headers ?? []) {
    const value =
      entry.raw_value !== undefined && entry.raw_value.length > 0
        ? Buffer.from(entry.raw_value).toString('latin1')
        : (entry.value ?? '')
    headers.set((entry.key ?? '').toLowerCase(), value)
  }
  return headers
}

/**
 * Returns the request body bytes. Envoy sends the body as a string unless
 * with_request_body.pack_as_bytes is set. Hashing a string form could differ from the bytes the
 * backend receives, so that case throws and the request is denied.
 */
export function requestBody(http: HttpRequest): Uint8Array {
  const body = http?.raw_body ?? new Uint8Array()
  if (body.length === 0 && (http?.body ?? '').length > 0) {
    throw new Error('Envoy sent the request body as a string; set with_request_body.pack_as_bytes')
  }
  return body
}

/** Envoy sets this request header to "true" when it sent only the first part of the body. */
const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body'

/**
 * True when any occurrence of the partial-body header, in either header form and in any letter
 * case, says "true", so a duplicate header cannot hide a truncated body.
 */
export function isPartialBody(http: HttpRequest): boolean {
  const values = Object.entries(http?.headers ?? {})
    .filter(([name]) => name.toLowerCase() === PARTIAL_BODY_HEADER)
    .map(([, value]) => String(value))
  for (const entry of http?.header_map?.headers ?? []) {
    if ((entry.key ?? '').toLowerCase() !== PARTIAL_BODY_HEADER) continue
    values.push(entry.value ?? '', Buffer.from(entry.raw_value ?? []).toString('latin1'))
  }
  return values.some((value) => value.trim().toLowerCase() === 'true')
}
