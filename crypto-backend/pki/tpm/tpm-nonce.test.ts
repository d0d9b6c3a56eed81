import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'
import { issueNonce, NONCE_LIFETIME_MS } from './tpm-nonce.js'

let dir: string
let store: SqliteStore

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-nonce-'))
  store = new SqliteStore(join(dir, 'hsmgate.db'))
})

afterEach(async () => {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

const limits = { perSource: 3, perPrefix: { prefix: 'addr:', max: 5 } }

async function attempt(source: string, now: Date): Promise<string> {
  try {
    await issueNonce(store.tpm, source, limits, now)
    return 'issued'
  } catch (error) {
    if (error instanceof ApiError) return error.code
    throw error
  }
}

describe('nonce limits', () => {
  it('caps one address and all addresses', async () => {
    const now = new Date()
    // Ten concurrent requests from one address.
    const one = await Promise.all(Array.from({ length: 10 }, () => attempt('addr:192.0.2.1', now)))
    expect(one.filter((r) => r === 'issued')).toHaveLength(3)
    expect(await attempt('addr:192.0.2.2', now)).toBe('issued')
    expect(await attempt('addr:192.0.2.2', now)).toBe('issued')
    expect(await attempt('addr:192.0.2.3', now)).toBe('nonce_limit')
    expect(await store.tpm.nonceCount()).toBe(5)
  })

  it('keeps token nonces out of the address total', async () => {
    const now = new Date()
    for (let i = 0; i < 8; i++) await attempt(`addr:198.51.100.${i}`, now)
    expect(await attempt('token:abc', now)).toBe('issued')
  })

  it('deletes expired unused nonces', async () => {
    const start = new Date()
    for (let i = 0; i < 5; i++) await attempt(`addr:203.0.113.${i}`, start)
    const later = new Date(start.getTime() + NONCE_LIFETIME_MS + 1)
    expect(await attempt('addr:203.0.113.9', later)).toBe('issued')
    expect(await store.tpm.nonceCount()).toBe(1)
  })
})
