import { describe, expect, it } from 'vitest'
import type { Application } from '../store/store.js'
import { sourceMismatchNote } from './deny-note.js'
import { DEFAULT_DENY_REASON } from './policy-engine.js'

const app: Application = {
  name: 'payments',
  team: 'payments',
  hosts: ['app1.example'],
  addresses: ['10.0.0.5'],
  suspended: false,
  createdAt: '2026-01-01T00:00:00.000Z',
}

describe('source mismatch note', () => {
  it('names the source and the certificate addresses on a default deny', () => {
    const note = sourceMismatchNote(
      DEFAULT_DENY_REASON,
      '127.0.0.1',
      { ipAddresses: ['10.0.0.5'] },
      app,
    )
    expect(note).toContain('source address 127.0.0.1')
    expect(note).toContain("not one of the certificate's addresses (10.0.0.5)")
    expect(note).toContain('sourceMatchesHost is false')
  })

  it("falls back to the application's addresses without IP SANs", () => {
    const note = sourceMismatchNote(DEFAULT_DENY_REASON, '127.0.0.1', { ipAddresses: [] }, app)
    expect(note).toContain("the application's addresses (10.0.0.5)")
  })

  it('is empty when the source matches', () => {
    expect(
      sourceMismatchNote(DEFAULT_DENY_REASON, '10.0.0.5', { ipAddresses: ['10.0.0.5'] }, app),
    ).toBe('')
  })

  it('is empty for a deny by a forbid policy', () => {
    expect(
      sourceMismatchNote(
        'the application is suspended',
        '127.0.0.1',
        { ipAddresses: ['10.0.0.5'] },
        app,
      ),
    ).toBe('')
  })
})
