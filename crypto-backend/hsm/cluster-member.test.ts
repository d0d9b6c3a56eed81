import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClusterMember } from './cluster-member.js'
import { HsmError } from './errors.js'
import {
  captureLogger,
  createSofthsmEnv,
  type SofthsmTestEnv,
} from '../../test/helpers/softhsm-env.js'

let env: SofthsmTestEnv
const log = captureLogger()

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

beforeAll(async () => {
  env = await createSofthsmEnv(['member-token'])
})

afterAll(() => env?.cleanup())

describe('ClusterMember.run', () => {
  it('times out a slow call and marks the member failed', async () => {
    const member = ClusterMember.open(
      env.member('hsm-slow', 0, { pool_size: 1, operation_timeout_ms: 100 }),
      log.logger,
    )
    try {
      // The action simulates a PKCS#11 call that hangs in the libuv thread pool.
      let finished = false
      const slow = member.run('slow call', async () => {
        await sleep(300)
        finished = true
        return 'late'
      })
      const error = await slow.catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(HsmError)
      expect((error as HsmError).code).toBe('hsm_timeout')
      expect(member.status().state).toBe('failed')
      expect(log.messages()).toContain('hsm member hsm-slow: healthy -> failed')

      // The session stays lent until the call really returns.
      expect(member.status().inUse).toBe(1)
      await sleep(300)
      expect(finished).toBe(true)
      expect(member.status().inUse).toBe(0)
      expect(member.status().sessions).toBe(1)

      await member.recheck()
      expect(member.status().state).toBe('healthy')
    } finally {
      await member.close()
    }
  })
})
