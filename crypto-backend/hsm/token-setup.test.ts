import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HsmError } from './errors.js'
import { acquireModule, moduleUsers } from './pkcs11-module.js'
import {
  SOFTHSM_MODULE,
  createSofthsmEnv,
  type SofthsmTestEnv,
} from '../../test/helpers/softhsm-env.js'
import { listTokens } from './token-lookup.js'
import { initializeToken, randomPin } from './token-setup.js'

let env: SofthsmTestEnv

function tokenLabels(): string[] {
  const module = acquireModule(SOFTHSM_MODULE)
  try {
    return listTokens(module.pkcs11, 'test').map((token) => token.label)
  } finally {
    module.release()
  }
}

async function setupError(label: string): Promise<HsmError> {
  try {
    await initializeToken(SOFTHSM_MODULE, label, randomPin(), randomPin())
  } catch (error) {
    if (error instanceof HsmError) return error
    throw error
  }
  throw new Error('expected initializeToken to fail')
}

beforeAll(async () => {
  env = await createSofthsmEnv(['setup-one'])
})

afterAll(() => env?.cleanup())

describe('initializeToken', () => {
  it('returns the new token serial', () => {
    const [token] = env.tokens
    expect(token?.serial).toMatch(/^[0-9a-f]{16}$/)
    const module = acquireModule(SOFTHSM_MODULE)
    try {
      const found = listTokens(module.pkcs11, 'test').find((t) => t.label === 'setup-one')
      expect(found?.serial).toBe(token?.serial)
      const info = module.pkcs11.C_GetTokenInfo(found?.slot as Buffer)
      expect(info.label).toBe('setup-one'.padEnd(32, ' '))
    } finally {
      module.release()
    }
  })

  it('lists a new token without C_Initialize', async () => {
    // Holding the module keeps one C_Initialize for the whole test, so the token found below
    // comes from re-reading the slot list, not from a fresh C_Initialize.
    const held = acquireModule(SOFTHSM_MODULE)
    try {
      const { serial } = await initializeToken(
        SOFTHSM_MODULE,
        'setup-two',
        randomPin(),
        randomPin(),
      )
      expect(serial).toMatch(/^[0-9a-f]{16}$/)
      expect(tokenLabels()).toEqual(expect.arrayContaining(['setup-one', 'setup-two']))
      expect(moduleUsers(SOFTHSM_MODULE)).toBe(1)
    } finally {
      held.release()
    }
  })

  it('lists external tokens after C_Initialize only', () => {
    // softhsm2-util takes PINs as arguments; these are throwaway PINs of a temporary token.
    const held = acquireModule(SOFTHSM_MODULE)
    try {
      execFileSync(
        'softhsm2-util',
        ['--init-token', '--free', '--label', 'external', '--so-pin', '1234', '--pin', '5678'],
        {
          env: process.env,
          stdio: 'ignore',
        },
      )
      expect(tokenLabels()).not.toContain('external')
    } finally {
      held.release()
    }
    expect(moduleUsers(SOFTHSM_MODULE)).toBe(0)
    expect(tokenLabels()).toContain('external')
  })

  it('rejects a label that is already used', async () => {
    const error = await setupError('setup-one')
    expect(error.code).toBe('hsm_operation_failed')
    expect(error.message).toContain('already exists')
  })

  it('rejects a label longer than 32 bytes', async () => {
    const error = await setupError('x'.repeat(33))
    expect(error.code).toBe('hsm_operation_failed')
    expect(error.message).toContain('1 to 32 bytes')
  })
})

describe('randomPin', () => {
  it('returns 24 base64url characters', () => {
    const pins = new Set(Array.from({ length: 20 }, () => randomPin()))
    expect(pins.size).toBe(20)
    for (const pin of pins) expect(pin).toMatch(/^[A-Za-z0-9_-]{24}$/)
  })
})
