import { randomBytes } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import { bodyDigest, signDecision } from './decision-header.js'
import { IdentityError, identityFromCertificate, type PeerIdentity } from './identity.js'
import { describeOperation, resolveOperation, type Operation } from './operation.js'
import type { RuleSet } from './rules.js'

/** Request headers that an allow sets. The crypto backend trusts only these. */
export const PRINCIPAL_HEADER = 'x-hsmgate-principal'
export const DECISION_HEADER = 'x-hsmgate-decision'
export const DECISION_ID_HEADER = 'x-hsmgate-decision-id'

/** Prefix of the headers that only ext_authz may set on requests to the backend. */
export const RESERVED_HEADER_PREFIX = 'x-hsmgate-'

/** google.rpc.Code values used in CheckResponse.status. */
const GRPC_OK = 0
const GRPC_PERMISSION_DENIED = 7

/** envoy.config.core.v3.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD */
const OVERWRITE_IF_EXISTS_OR_ADD = 2

/** Envoy sets this request header to "true" when it sent only the first part of the body. */
const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body'

/** The CheckRequest fields that the handler reads, as @grpc/proto-loader decodes them. */
export interface CheckRequest {
  attributes?: {
    source?: { certificate?: string } | null
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

export interface HeaderValueOption {
  header: { key: string; value: string }
  append: { value: boolean }
  append_action: number
}

export interface CheckResponse {
  status: { code: number; message: string }
  ok_response?: {
    headers: HeaderValueOption[]
    headers_to_remove: string[]
    response_headers_to_add: HeaderValueOption[]
  }
  denied_response?: {
    status: { code: number }
    headers: HeaderValueOption[]
    body: string
  }
}

export interface CheckHandlerOptions {
  /** Returns the rules in force. It is called once per request, so reloads apply at once. */
  readonly rules: () => RuleSet
  readonly decisionSecret: Buffer
  readonly trustDomain: string
  readonly logger: Logger
  /** Clock in milliseconds since the Unix epoch, replaced in tests. */
  readonly now?: () => number
}

/** Error codes in deny bodies, each with its fixed HTTP status. */
type DenyCode =
  | 'unauthenticated'
  | 'invalid_key_name'
  | 'unknown_route'
  | 'forbidden'
  | 'body_too_large'
  | 'authz_error'

/** A deny with the text for the client and the details for the log. */
interface Deny {
  readonly status: 400 | 401 | 403 | 404 | 413 | 503
  readonly code: DenyCode
  readonly message: string
  readonly reason: string
  readonly logFields?: Record<string, unknown>
}

/** Returns a random decision id: `d_` and 16 random bytes as base64url. */
export function newDecisionId(): string {
  return `d_${randomBytes(16).toString('base64url')}`
}

/**
 * Builds the Check handler. It identifies the client from the peer certificate, maps the route
 * to an operation, evaluates the rules and returns an allow that carries a signed decision header,
 * or a deny with an HTTP status and JSON body. Every call logs one line with its decision id. Any
 * unexpected error becomes a 503 deny, never an allow.
 */
export function createCheckHandler(
  options: CheckHandlerOptions,
): (req: CheckRequest) => CheckResponse {
  const now = options.now ?? Date.now
  const { logger } = options

  return (request) => {
    const decisionId = newDecisionId()
    try {
      return decide(options, request, decisionId, now())
    } catch (error) {
      logger.error(
        { decision_id: decisionId, result: 'deny', reason: 'authz_error', err: error },
        'authorization failed with an internal error',
      )
      return deniedResponse(decisionId, {
        status: 503,
        code: 'authz_error',
        message: 'authorization is unavailable; try again later',
        reason: 'authz_error',
      })
    }
  }
}

function decide(
  options: CheckHandlerOptions,
  request: CheckRequest,
  decisionId: string,
  nowMs: number,
): CheckResponse {
  const http = request.attributes?.request?.http
  const method = http?.method ?? ''
  const path = http?.path ?? ''
  const requestFields = {
    decision_id: decisionId,
    request_id: http?.id || undefined,
    method,
    path: path.slice(0, 256),
  }
  const deny = (
    identity: PeerIdentity | undefined,
    operation: Operation | undefined,
    result: Deny,
  ): CheckResponse => {
    options.logger.info(
      {
        ...requestFields,
        ...decisionFields(identity, operation),
        result: 'deny',
        reason: result.reason,
        http_status: result.status,
        ...result.logFields,
      },
      'authorization decision',
    )
    return deniedResponse(decisionId, result)
  }

  let identity: PeerIdentity
  try {
    identity = identityFromCertificate(
      request.attributes?.source?.certificate ?? '',
      options.trustDomain,
      nowMs,
    )
  } catch (error) {
    if (!(error instanceof IdentityError)) {
      throw error
    }
    return deny(undefined, undefined, {
      status: 401,
      code: 'unauthenticated',
      message: 'a valid client certificate is required',
      reason: error.code,
      logFields: { detail: error.message },
    })
  }

  const route = resolveOperation(method, path)
  if (!route.ok) {
    return deny(identity, undefined, { ...route.error, reason: route.error.code })
  }
  const operation = route.operation

  const rules = options.rules()
  const verdict = rules.evaluate(identity.principal, operation)
  if (!verdict.allowed) {
    return deny(identity, operation, {
      status: 403,
      code: 'forbidden',
      message: `principal ${identity.principal} may not ${describeOperation(operation)}`,
      reason: verdict.reason,
      logFields: { rules_version: rules.version },
    })
  }

  const requestHeaders = collectHeaders(http)
  if (requestHeaders.get(PARTIAL_BODY_HEADER) === 'true') {
    return deny(identity, operation, {
      status: 413,
      code: 'body_too_large',
      message: 'request body is too large',
      reason: 'partial_body',
    })
  }
  const body = http?.raw_body ?? new Uint8Array()
  if (body.length === 0 && (http?.body ?? '').length > 0) {
    // Envoy sends the body as a string unless with_request_body.pack_as_bytes is set. Hashing a
    // string form could differ from the bytes the backend receives, so fail closed.
    throw new Error('Envoy sent the request body as a string; set with_request_body.pack_as_bytes')
  }

  const headers = [
    overwrite(PRINCIPAL_HEADER, identity.principal),
    overwrite(
      DECISION_HEADER,
      signDecision(options.decisionSecret, {
        decisionId,
        principal: identity.principal,
        method,
        path,
        bodyDigest: bodyDigest(body),
        issuedAtMs: nowMs,
      }),
    ),
    overwrite(DECISION_ID_HEADER, decisionId),
  ]
  // Client-sent x-hsmgate-* headers must not reach the backend. Envoy applies headers_to_remove
  // after the headers it sets, so the headers set here are overwritten rather than removed.
  const setByAllow = new Set(headers.map((h) => h.header.key))
  const headersToRemove = [...requestHeaders.keys()]
    .filter((name) => name.startsWith(RESERVED_HEADER_PREFIX) && !setByAllow.has(name))
    .sort()

  options.logger.info(
    {
      ...requestFields,
      ...decisionFields(identity, operation),
      result: 'allow',
      reason: 'rule_matched',
      rule_index: verdict.ruleIndex,
      rules_version: rules.version,
      body_bytes: body.length,
      removed_headers: headersToRemove.length > 0 ? headersToRemove : undefined,
    },
    'authorization decision',
  )
  return {
    status: { code: GRPC_OK, message: '' },
    ok_response: { headers, headers_to_remove: headersToRemove, response_headers_to_add: [] },
  }
}

function decisionFields(
  identity: PeerIdentity | undefined,
  operation: Operation | undefined,
): Record<string, unknown> {
  return {
    principal: identity?.principal ?? null,
    cert_serial: identity?.serialNumber,
    operation: operation?.name ?? null,
    key: operation !== undefined && 'key' in operation ? operation.key : null,
  }
}

function deniedResponse(decisionId: string, deny: Deny): CheckResponse {
  const body = JSON.stringify({
    error: { code: deny.code, message: deny.message, decision_id: decisionId },
  })
  return {
    status: { code: GRPC_PERMISSION_DENIED, message: deny.code },
    denied_response: {
      status: { code: deny.status },
      headers: [
        overwrite('content-type', 'application/json'),
        overwrite(DECISION_ID_HEADER, decisionId),
      ],
      body,
    },
  }
}

/**
 * Sets a header, replacing any value the client sent. Both the deprecated `append` field and
 * append_action request an overwrite, so Envoy overwrites whichever of the two it reads.
 */
function overwrite(key: string, value: string): HeaderValueOption {
  return {
    header: { key, value },
    append: { value: false },
    append_action: OVERWRITE_IF_EXISTS_OR_ADD,
  }
}

type HttpRequest = NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']

/**
 * Returns the request headers by lowercase name, from `headers` or, when Envoy's
 * encode_raw_headers is set, from `header_map`.
 */
function collectHeaders(http: HttpRequest): Map<string, string> {
  const headers = new Map<string, string>()
  for (const [name, value] of Object.entries(http?.headers ?? {})) {
    headers.set(name.toLowerCase(), value)
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
