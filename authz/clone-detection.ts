import { normalizeSerial } from '../store/certificate-serial.js'
import type { Logger } from '../log/logger.js'
import type { Application, IssuedCertificate, SerialSighting } from '../store/store.js'
import type { Deny } from './check-response.js'
import type { PeerIdentity } from './identity.js'
import type { Alerter } from './alert.js'

/** The store operations clone detection uses. */
export interface SerialLedger {
  recordSerialSeen(
    app: string,
    host: string,
    serial: string,
    notBefore: string,
  ): Promise<SerialSighting>
  putApplication(app: Application): Promise<void>
  certificatesOf(app: string): Promise<IssuedCertificate[]>
}

export interface CloneDetection {
  readonly ledger: SerialLedger
  /** Suspend the application when a copy is detected. */
  readonly suspend: boolean
  /** Sends the alert of a detected copy; without it the alert is only logged. */
  readonly alerter?: Alerter
}

/**
 * The serial last recorded as newest per application and host, with its notBefore, so that a
 * client using its current certificate again needs at most one store write per second. Other
 * gateway nodes on the same store may record a successor at any time, so an entry is trusted
 * for NEWEST_SEEN_TTL_MS only: a copied key is refused by every node within that time after its
 * successor was first used anywhere.
 */
const newestSeenBy = new WeakMap<CloneDetection, Map<string, NewestSeen>>()

interface NewestSeen {
  serial: string
  notBefore: string
  /** performance.now() when the store last confirmed this serial as the newest. */
  confirmedMs: number
}
const NEWEST_SEEN_LIMIT = 10_000
/** How long a serial confirmed as newest is accepted without asking the store again. */
export const NEWEST_SEEN_TTL_MS = 1000

/**
 * Returns the host a certificate is bound to: its first DNS SAN, or '' for a certificate
 * without one (such as the demo certificates made by `hsmgate init`).
 */
export function hostOf(identity: PeerIdentity): string {
  return identity.dnsNames[0] ?? ''
}

/** Returns the serial of the newest certificate issued for the application and host. */
async function newestIssued(
  ledger: SerialLedger,
  app: string,
  host: string,
): Promise<string | undefined> {
  const issued = (await ledger.certificatesOf(app)).filter((c) => c.host === host)
  issued.sort((a, b) => a.issuedAt.localeCompare(b.issuedAt))
  return issued.at(-1)?.serial
}

/**
 * Records that the application used this certificate. When a certificate of the same
 * application and host with a later notBefore was used before, the older key is still in use
 * after its renewal: a copy. The request is denied, an alert is logged with both serials, and
 * with `suspend` the application is suspended so that every later request is denied too.
 * Returns the deny, or undefined when the certificate is the newest seen.
 */
export async function detectClone(
  detection: CloneDetection,
  application: Application,
  identity: PeerIdentity,
  decisionId: string,
  logger: Logger,
): Promise<Deny | undefined> {
  const host = hostOf(identity)
  const serial = normalizeSerial(identity.serialNumber)
  const notBefore = identity.notBefore.toISOString()
  const cacheKey = `${application.name}\u0000${host}`
  let newestSeen = newestSeenBy.get(detection)
  if (newestSeen === undefined) newestSeenBy.set(detection, (newestSeen = new Map()))
  const seen = newestSeen.get(cacheKey)
  const checkedMs = performance.now()
  if (seen?.serial === serial && checkedMs - seen.confirmedMs < NEWEST_SEEN_TTL_MS) {
    return undefined
  }
  const sighting = await detection.ledger.recordSerialSeen(
    application.name,
    host,
    serial,
    notBefore,
  )
  if (sighting === 'newest') {
    // Concurrent lookups can resolve out of order. The cache keeps the latest notBefore, as the
    // store does, so an older serial whose lookup resolves last does not replace its successor.
    const cached = newestSeen.get(cacheKey)
    if (cached === undefined || cached.notBefore <= notBefore) {
      if (newestSeen.size >= NEWEST_SEEN_LIMIT) newestSeen.clear()
      newestSeen.set(cacheKey, { serial, notBefore, confirmedMs: checkedMs })
    }
    return undefined
  }
  if (detection.suspend && !application.suspended) {
    await detection.ledger.putApplication({ ...application, suspended: true })
  }
  const message = 'a superseded client certificate was used after its successor; its key was copied'
  const newerSerial = await newestIssued(detection.ledger, application.name, host)
  if (detection.alerter !== undefined) {
    detection.alerter.raise({
      rule: 'certificate_clone',
      app: application.name,
      subject: serial,
      message,
      decisionId,
      actions: detection.suspend ? ['suspend'] : [],
      details: { host, serial, newer_serial: newerSerial, suspended: detection.suspend },
    })
  } else {
    logger.error(
      {
        alert: 'certificate_clone',
        decision_id: decisionId,
        app: application.name,
        host,
        serial,
        newer_serial: newerSerial,
        suspended: detection.suspend,
      },
      `ALERT: ${message}`,
    )
  }
  return {
    status: 403,
    code: 'certificate_superseded',
    message: 'this certificate was superseded by a newer one and may no longer be used',
    reason: 'certificate_clone',
  }
}
