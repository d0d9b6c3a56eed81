import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'
import { issueNonce, NONCE_LIFETIME_MS } from './tpm-nonce.js'

let dir: string
let store: SqliteStore

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-nonce-'))
  store = new SqliteStore(join(dir, 'hsmgate.db'))
})

afterEach(() => {
  store.close()
  rmSync(dir, { recursive: true, force: true })
})

const limits = { perSource: 3, perPrefix: { prefix: 'addr:', max: 5 } }

function attempt(source: string, now: Date): string {
  try {
    issueNonce(store.tpm, source, limits, now)
    return 'issued'
  } catch (error) {
    if (error instanceof ApiError) return error.code
    throw error
  }
}

describe('nonce limits', () => {
  it('caps one address and all addresses', () => {
    const now = new Date()
    const one = Array.from({ length: 10 }, () => attempt('addr:192.0.2.1', now))
    expect(one.filter((r) => r === 'issued')).toHaveLength(3)
    expect(attempt('addr:192.0.2.2', now)).toBe('issued')
    expect(attempt('addr:192.0.2.2', now)).toBe('issued')
    expect(attempt('addr:192.0.2.3', now)).toBe('nonce_limit')
    expect(store.tpm.nonceCount()).toBe(5)
  })

  it('keeps token nonces out of the address total', () => {
    const now = new Date()
    for (let i = 0; i < 8; i++) attempt(`addr:198.51.100.${i}`, now)
    expect(attempt('token:abc', now)).toBe('issued')
  })

  it('deletes expired unused nonces', () => {
    const start = new Date()
    for (let i = 0; i < 5; i++) attempt(`addr:203.0.113.${i}`, start)
    const later = new Date(start.getTime() + NONCE_LIFETIME_MS + 1)
    expect(attempt('addr:203.0.113.9', later)).toBe('issued')
    expect(store.tpm.nonceCount()).toBe(1)
  })
})
