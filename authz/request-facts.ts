import { isIP } from 'node:net'
import type { Application } from '../store/store.js'
import type { PeerIdentity } from './identity.js'
import type { ContextFacts } from './policy-request.js'

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']

/** Cedar Long is a signed 64-bit integer; seconds and byte counts stay far below this. */
const MAX_FACT_NUMBER = Number.MAX_SAFE_INTEGER

/** The request parts that context facts come from. */
export interface FactSources {
  readonly identity: PeerIdentity
  readonly application: Application | undefined
  /** The client address: the peer Envoy reports, or past trusted proxies; empty when absent. */
  readonly sourceAddress: string
  readonly body: Uint8Array
  readonly nowMs: number
}

/** Derives the Cedar context facts of one request. Times are UTC. */
export function contextFacts(sources: FactSources): ContextFacts {
  const { identity, nowMs } = sources
  const now = new Date(nowMs)
  const body = bodyFacts(sources.body)
  return {
    sourceAddress: sources.sourceAddress,
    sourceMatchesHost: sourceMatchesHost(
      sources.sourceAddress,
      sources.application,
      identity.ipAddresses,
    ),
    certificate: {
      issuer: identity.issuer,
      serial: identity.serialNumber,
      lifetimeSeconds: seconds(identity.notAfter.getTime() - identity.notBefore.getTime()),
      ageSeconds: seconds(nowMs - identity.notBefore.getTime()),
      keyProtection: identity.keyProtection,
    },
    time: {
      hour: now.getUTCHours(),
      minute: now.getUTCMinutes(),
      weekday: WEEKDAYS[now.getUTCDay()] as string,
    },
    ...(body.algorithm === undefined ? {} : { algorithm: body.algorithm }),
    encryptionContext: body.encryptionContext,
    requestBytes: sources.body.length,
    // Approval grants do not exist yet, so no request carries one.
    approvalGranted: false,
  }
}

/**
 * True when the client address is one of the certificate's IP SANs. A certificate with IP SANs
 * is bound to those addresses alone, so it cannot be used from another host of the same
 * application; a certificate without IP SANs falls back to the application's addresses.
 * Addresses compare in canonical form, and an IPv4-mapped IPv6 address matches its IPv4 form.
 * An empty or unparsable address never matches.
 */
export function sourceMatchesHost(
  address: string,
  application: Application | undefined,
  certificateAddresses: readonly string[],
): boolean {
  const source = canonicalAddress(address)
  if (source === undefined) return false
  const known =
    certificateAddresses.length > 0 ? certificateAddresses : (application?.addresses ?? [])
  return known.some((candidate) => canonicalAddress(candidate) === source)
}

export function canonicalAddress(address: string): string | undefined {
  const trimmed = address.trim()
  const version = isIP(trimmed)
  if (version === 4) return trimmed
  if (version !== 6) return undefined
  const url = new URL(`http://[${trimmed}]/`)
  const host = url.hostname.slice(1, -1)
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host)
  if (mapped === null) return host
  const high = parseInt(mapped[1] as string, 16)
  const low = parseInt(mapped[2] as string, 16)
  return [high >> 8, high & 255, low >> 8, low & 255].join('.')
}

/**
 * Reads `algorithm` and `context` from a JSON object body, decoding it as the backend does so
 * that both see the same values. A field of the wrong type is left out: the backend rejects such
 * a body before it uses a key.
 */
export function bodyFacts(body: Uint8Array): {
  algorithm?: string
  encryptionContext: Record<string, string> | null
} {
  const none = { encryptionContext: null }
  if (body.length === 0) return none
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(body).toString('utf8'))
  } catch {
    return none
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return none
  const record = value as Record<string, unknown>
  const algorithm = typeof record.algorithm === 'string' ? record.algorithm : undefined
  return {
    ...(algorithm === undefined ? {} : { algorithm }),
    encryptionContext: stringMap(record.context),
  }
}

function stringMap(value: unknown): Record<string, string> | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  const entries = Object.entries(value)
  if (entries.some(([, v]) => typeof v !== 'string')) return null
  // fromEntries defines own properties, so a key such as '__proto__' stays an ordinary entry.
  return Object.fromEntries(entries) as Record<string, string>
}

function seconds(ms: number): number {
  return Math.max(-MAX_FACT_NUMBER, Math.min(MAX_FACT_NUMBER, Math.floor(ms / 1000)))
}
