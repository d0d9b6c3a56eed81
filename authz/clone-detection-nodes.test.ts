import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresStore } from '../store/postgres/postgres-store.js'
import { application } from '../test/helpers/policy-fixtures.js'
import { testSchema, type TestSchema } from '../test/helpers/postgres-schema.js'
import { detectClone, NEWEST_SEEN_TTL_MS, type CloneDetection } from './clone-detection.js'
import type { PeerIdentity } from './identity.js'

// Two stores on one schema stand for the authz processes of two gateway nodes.
const logger = pino({ level: 'silent' })
let schema: TestSchema
let storeA: PostgresStore
let storeB: PostgresStore

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

beforeAll(async () => {
  schema = testSchema()
  storeA = await PostgresStore.open(schema.options())
  storeB = await PostgresStore.open(schema.options())
  await storeA.putApplication(application('payments'))
})

afterAll(async () => {
  await storeA?.close()
  await storeB?.close()
  await schema?.drop()
})

describe('clone detection across nodes', () => {
  it('refuses a superseded serial on the node that cached it', async () => {
    const nodeA: CloneDetection = { ledger: storeA, suspend: false }
    const nodeB: CloneDetection = { ledger: storeB, suspend: false }
    const app = application('payments')
    const copied = identity('0c01', '2026-12-04T00:00:00.000Z')
    const renewed = identity('0c02', '2026-12-04T00:40:00.000Z')

    expect(await detectClone(nodeA, app, copied, 'd_1', logger)).toBeUndefined()
    expect(await detectClone(nodeB, app, renewed, 'd_2', logger)).toBeUndefined()
    await new Promise((resolve) => setTimeout(resolve, NEWEST_SEEN_TTL_MS + 50))

    const denied = await detectClone(nodeA, app, copied, 'd_3', logger)
    expect(denied).toMatchObject({ status: 403, code: 'certificate_superseded' })
    expect(await detectClone(nodeB, app, copied, 'd_4', logger)).toMatchObject({ status: 403 })
    expect(await detectClone(nodeA, app, renewed, 'd_5', logger)).toBeUndefined()
  })

  it('suspends the application for every node', async () => {
    await storeA.putApplication(application('reporting'))
    const nodeA: CloneDetection = { ledger: storeA, suspend: true }
    const nodeB: CloneDetection = { ledger: storeB, suspend: true }
    const app = application('reporting')
    const renewed = { ...identity('0d02', '2026-12-04T00:40:00.000Z') }
    const copied = { ...identity('0d01', '2026-12-04T00:00:00.000Z') }
    expect(await detectClone(nodeA, app, renewed, 'd_6', logger)).toBeUndefined()
    expect(await detectClone(nodeB, app, copied, 'd_7', logger)).toMatchObject({ status: 403 })
    expect((await storeA.application('reporting'))?.suspended).toBe(true)
  })
})
