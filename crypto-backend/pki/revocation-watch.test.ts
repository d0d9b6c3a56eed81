import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresStore } from '../../store/postgres/postgres-store.js'
import type { IssuedCertificate } from '../../store/store.js'
import { testSchema, type TestSchema } from '../../test/helpers/postgres-schema.js'
import { RevocationWatch, revocationMarkOf } from './revocation-watch.js'

const logger = pino({ level: 'silent' })
let schema: TestSchema
let nodeA: PostgresStore
let nodeB: PostgresStore

function certificate(serial: string): IssuedCertificate {
  const now = Date.now()
  return {
    serial,
    app: 'payments',
    host: 'pay-1',
    addresses: ['127.0.0.1'],
    notBefore: new Date(now - 60_000).toISOString(),
    notAfter: new Date(now + 3_600_000).toISOString(),
    keyProtection: 'software',
    status: 'active',
    revokedAt: null,
    revocationReason: null,
    issuedAt: new Date(now - 60_000).toISOString(),
  }
}

beforeAll(async () => {
  schema = testSchema()
  nodeA = await PostgresStore.open(schema.options())
  nodeB = await PostgresStore.open(schema.options())
  for (const serial of ['0a01', '0a02', '0a03']) await nodeA.putCertificate(certificate(serial))
})

afterAll(async () => {
  await nodeA?.close()
  await nodeB?.close()
  await schema?.drop()
})

describe('revocation watch', () => {
  it('publishes once when another node revokes', async () => {
    const published: string[] = []
    const watch = new RevocationWatch({
      mark: revocationMarkOf(nodeB),
      publish: async () => (published.push('crl'), true),
      logger,
    })
    await watch.start()
    try {
      expect(await watch.poll()).toBe(false)
      await nodeA.revokeCertificate('0a01', 'keyCompromise', new Date().toISOString())
      expect(await watch.poll()).toBe(true)
      expect(await watch.poll()).toBe(false)
      expect(published).toHaveLength(1)
    } finally {
      watch.stop()
    }
  })

  it('sees a revocation dated before the newest one', async () => {
    const mark = revocationMarkOf(nodeB)
    const before = await mark()
    await nodeA.revokeCertificate('0a02', 'superseded', '2020-01-01T00:00:00.000Z')
    expect(await mark()).not.toBe(before)
  })

  it('retries a publish that could not run', async () => {
    let free = false
    let publishes = 0
    const watch = new RevocationWatch({
      mark: revocationMarkOf(nodeB),
      publish: async () => {
        publishes++
        return free
      },
      logger,
    })
    await watch.start()
    try {
      await nodeA.revokeCertificate('0a03', 'keyCompromise', new Date().toISOString())
      expect(await watch.poll()).toBe(false)
      free = true
      expect(await watch.poll()).toBe(true)
      expect(publishes).toBe(2)
    } finally {
      watch.stop()
    }
  })

  it('keeps polling after the store fails', async () => {
    let fail = true
    const watch = new RevocationWatch({
      mark: async () => {
        if (fail) throw new Error('store unavailable')
        return 'changed'
      },
      publish: async () => true,
      logger,
    })
    watch['seen'] = 'initial'
    expect(await watch.poll()).toBe(false)
    fail = false
    expect(await watch.poll()).toBe(true)
  })
})
