import { describe, expect, it } from 'vitest'
import { approvalRequired } from './controls.js'

describe('approval_required message', () => {
  const deny = approvalRequired(
    { group: 'custodians', required: 2, source: 'rule 1' },
    {
      requester: 'spiffe://d/app/payments',
      operation: 'decrypt',
      key: 'payments-data',
      paramsDigest: 'ab'.repeat(32),
    },
  )
  const command = /run '([^']+)'/.exec(deny.message)?.[1] ?? ''

  it('names a complete approvals request command', () => {
    expect(command).toMatch(/^hsmgate approvals request /)
    for (const option of [
      '--gateway URL',
      '--ca CA_FILE',
      '--cert CERT_FILE',
      '--tls-key KEY_FILE',
    ]) {
      expect(command).toContain(option)
    }
    expect(command).toContain('--operation decrypt --key payments-data')
    expect(command).toContain(`--digest ${'ab'.repeat(32)}`)
  })

  it('states the group and the count', () => {
    expect(deny.message).toMatch(/needs 2 approvals from group 'custodians'/)
    expect(deny.code).toBe('approval_required')
  })
})
