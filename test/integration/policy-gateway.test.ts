import { writeFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initGateway, postJson, startUp, type TestGateway } from '../helpers/gateway-process.js'

// The real gateway with the starter Cedar policies: audit records of authz and the backend,
// and policy reloads while it runs.

let gateway: TestGateway
const b64 = (text: string): string => Buffer.from(text).toString('base64')

beforeAll(async () => {
  const { dir, port } = await initGateway()
  gateway = await startUp(dir, port)
}, 180_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
})

function auditRows(decisionId: string): { node: string; policy_ids: string; reason: string }[] {
  const db = new Database(join(gateway.dir, 'store', 'hsmgate.db'), { readonly: true })
  try {
    return db
      .prepare('SELECT node, policy_ids, reason FROM audit WHERE decision_id = ? ORDER BY node')
      .all(decisionId) as { node: string; policy_ids: string; reason: string }[]
  } finally {
    db.close()
  }
}

/** Retries `probe` every 250 ms for up to 10 seconds until it returns true. */
async function eventually(probe: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (await probe()) return true
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return false
}

const sign = () =>
  postJson(gateway, 'payments', '/v1/keys/payments-signing/sign', { message: b64('x') })

describe('gateway with Cedar policies', () => {
  it('links the authz and backend audit records by decision id', async () => {
    const res = await sign()
    expect(res.status).toBe(200)
    const rows = auditRows(String(res.json().decision_id))
    expect(rows.map((r) => r.node)).toEqual(['node-1', 'node-1/authz'])
    expect(JSON.parse(rows[1]!.policy_ids)).toEqual(['own-keys'])
  })

  it('audits a deny with its policy id and reason', async () => {
    const res = await postJson(gateway, 'reporting', '/v1/keys/payments-signing/sign', {
      message: b64('x'),
    })
    expect(res.status).toBe(403)
    const error = res.json().error as { decision_id: string; policy_ids: string[] }
    expect(error.policy_ids).toEqual(['default-deny'])
    const rows = auditRows(error.decision_id)
    expect(rows).toEqual([
      {
        node: 'node-1/authz',
        policy_ids: '["default-deny"]',
        reason: 'no policy permits this request',
      },
    ])
  })

  it('applies a policy edit while running and keeps it through a bad edit', async () => {
    const file = join(gateway.dir, 'policies', 'freeze.cedar')
    writeFileSync(
      file,
      '@id("freeze-signing")\n@reason("signing is frozen for maintenance")\n' +
        'forbid (principal, action == Hsmgate::Action::"sign", resource);\n',
    )
    try {
      expect(await eventually(async () => (await sign()).status === 403)).toBe(true)
      const denied = await sign()
      expect((denied.json().error as { message: string }).message).toContain(
        'signing is frozen for maintenance (policy freeze-signing)',
      )
      writeFileSync(join(gateway.dir, 'policies', 'broken.cedar'), 'permit (principal,')
      await new Promise((resolve) => setTimeout(resolve, 2_500))
      expect((await sign()).status).toBe(403)
    } finally {
      unlinkSync(file)
      unlinkSync(join(gateway.dir, 'policies', 'broken.cedar'))
    }
    expect(await eventually(async () => (await sign()).status === 200)).toBe(true)
  })
})
