import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { Application, SerialSighting } from '../store/store.js'
import { application } from '../test/helpers/policy-fixtures.js'
import { detectClone, type CloneDetection } from './clone-detection.js'
import type { PeerIdentity } from './identity.js'

const logger = pino({ level: 'silent' })

function identity(serial: string, notBefore: string): PeerIdentity {
  return {
    principal: 'spiffe://hsmgate.demo/app/payments',
    trustDomain: 'hsmgate.demo',
    serialNumber: serial,
    issuer: 'CN=test',
    subject: 'CN=payments',
    notBefore: new Date(notBefore),
    notAfter: new Date(Date.parse(notBefore) + 3_600_000),
    fingerprint256: '',
    ipAddresses: [],
    dnsNames: ['pay-1'],
    keyProtection: 'software',
  }
}

/**
 * A ledger with the store's rule for newest serials, decided when called, whose results the
 * test releases in any order, as concurrent queries to a database can complete.
 */
function delayedLedger() {
  let newest: { serial: string; notBefore: string } | undefined
  const pending: Array<() => void> = []
  const calls: string[] = []
  const ledger: CloneDetection['ledger'] = {
    recordSerialSeen: (_app, _host, serial, notBefore) => {
      calls.push(serial)
      let sighting: SerialSighting = 'newest'
      if (newest !== undefined && newest.serial !== serial && newest.notBefore > notBefore) {
        sighting = 'older'
      } else {
        newest = { serial, notBefore }
      }
      return new Promise((resolve) => pending.push(() => resolve(sighting)))
    },
    putApplication: async (_app: Application) => undefined,
    certificatesOf: async () => [],
  }
  const release = (index: number) => pending[index]?.()
  return { ledger, calls, release, pending }
}

describe('clone detection', () => {
  it('keeps the newer serial when results arrive out of order', async () => {
    const { ledger, calls, release, pending } = delayedLedger()
    const detection: CloneDetection = { ledger, suspend: false }
    const app = application('payments')
    const old = identity('0a', '2026-12-04T00:00:00.000Z')
    const renewed = identity('0b', '2026-12-04T00:40:00.000Z')

    const first = detectClone(detection, app, old, 'd_1', logger)
    const second = detectClone(detection, app, renewed, 'd_2', logger)
    release(1)
    expect(await second).toBeUndefined()
    release(0)
    expect(await first).toBeUndefined()

    // The old serial must go to the store again, which reports it as superseded.
    const again = detectClone(detection, app, old, 'd_3', logger)
    await new Promise((resolve) => setImmediate(resolve))
    expect(calls).toEqual(['0a', '0b', '0a'])
    release(pending.length - 1)
    expect(await again).toMatchObject({ status: 403, code: 'certificate_superseded' })

    // The renewed serial is cached and needs no store call.
    expect(await detectClone(detection, app, renewed, 'd_4', logger)).toBeUndefined()
    expect(calls).toHaveLength(3)
  })

  it('alerts with lowercase serials', async () => {
    const { ledger, release, pending } = delayedLedger()
    const raised: Array<{ subject: string; details?: Record<string, unknown> }> = []
    const detection: CloneDetection = {
      ledger: {
        ...ledger,
        certificatesOf: async () => [
          {
            serial: '5b0c',
            app: 'payments',
            host: 'pay-1',
            addresses: [],
            notBefore: '2026-12-04T00:40:00.000Z',
            notAfter: '2026-12-04T01:40:00.000Z',
            keyProtection: 'software',
            status: 'active',
            revokedAt: null,
            revocationReason: null,
            issuedAt: '2026-12-04T00:40:00.000Z',
          },
        ],
      },
      suspend: false,
      alerter: { raise: (alert) => void raised.push(alert), idle: async () => undefined },
    }
    const app = application('payments')
    const renewed = detectClone(
      detection,
      app,
      identity('5B0C', '2026-12-04T00:40:00Z'),
      'd_1',
      logger,
    )
    release(0)
    expect(await renewed).toBeUndefined()
    const copy = detectClone(
      detection,
      app,
      identity('00:A1:F0', '2026-12-04T00:00:00Z'),
      'd_2',
      logger,
    )
    await new Promise((resolve) => setImmediate(resolve))
    release(pending.length - 1)
    expect(await copy).toMatchObject({ code: 'certificate_superseded' })
    expect(raised).toHaveLength(1)
    expect(raised[0]?.subject).toBe('a1f0')
    expect(raised[0]?.details).toMatchObject({ serial: 'a1f0', newer_serial: '5b0c' })
  })
})
