import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MemberConfig } from '../../config/schema.js'
import { HsmCluster } from './cluster.js'
import { HsmError } from './errors.js'
import { KEK_ID } from './key-templates.js'
import { moduleUsers } from './pkcs11-module.js'
import {
  SOFTHSM_MODULE,
  attribute,
  captureLogger,
  createSofthsmEnv,
  findAll,
  withToken,
  type SofthsmTestEnv,
  type TestToken,
} from '../../test/helpers/softhsm-env.js'

let env: SofthsmTestEnv

function tokenAt(index: number): TestToken {
  const token = env.tokens[index]
  if (token === undefined) throw new Error(`no token ${index}`)
  return token
}

async function openError(members: MemberConfig[]): Promise<HsmError> {
  try {
    const cluster = await HsmCluster.open(members, { logger: captureLogger().logger })
    await cluster.close()
  } catch (error) {
    if (error instanceof HsmError) return error
    throw error
  }
  throw new Error('expected HsmCluster.open to fail')
}

beforeAll(async () => {
  env = await createSofthsmEnv(['setup-a', 'setup-b'])
})

afterAll(() => env?.cleanup())

describe('HsmCluster.open', () => {
  it('wrong PIN gives hsm_login_failed naming the member', async () => {
    const wrongPinFile = join(env.dir, 'wrong.pin')
    writeFileSync(wrongPinFile, 'not-the-pin\n', { mode: 0o600 })
    const error = await openError([
      env.member('hsm-a', 0),
      env.member('hsm-b', 1, { pin_file: wrongPinFile }),
    ])
    expect(error.code).toBe('hsm_login_failed')
    expect(error.member).toBe('hsm-b')
    expect(error.message).toContain("member 'hsm-b'")
    expect(error.message).toContain('CKR_PIN_INCORRECT')
    expect(error.message).not.toContain('not-the-pin')
    expect(error.pkcs11?.value).toBe(pkcs11js.CKR_PIN_INCORRECT)
  })

  it('missing token label gives hsm_token_not_found', async () => {
    const error = await openError([env.member('hsm-x', 0, { token_label: 'no-such-token' })])
    expect(error.code).toBe('hsm_token_not_found')
    expect(error.message).toContain("member 'hsm-x': token with label 'no-such-token' not found")
    expect(error.message).toContain('softhsm2-util --show-slots')
  })

  it('missing PIN file gives hsm_pin_unavailable', async () => {
    const error = await openError([
      env.member('hsm-a', 0, { pin_file: join(env.dir, 'absent.pin') }),
    ])
    expect(error.code).toBe('hsm_pin_unavailable')
    expect(error.message).toContain('ENOENT')
  })

  it('unset PIN variable gives hsm_pin_unavailable', async () => {
    const member = {
      ...env.member('hsm-a', 0),
      pin_file: undefined,
      pin_env: 'HSMGATE_TEST_UNSET_PIN',
    }
    const error = await openError([member])
    expect(error.code).toBe('hsm_pin_unavailable')
    expect(error.message).toContain('HSMGATE_TEST_UNSET_PIN')
  })

  it('failed open releases the module', async () => {
    await openError([env.member('hsm-a', 0), env.member('hsm-x', 0, { token_label: 'absent' })])
    expect(moduleUsers(SOFTHSM_MODULE)).toBe(0)
  })

  it('opens by serial with pin_env', async () => {
    const token = tokenAt(0)
    process.env.HSMGATE_TEST_PIN = token.userPin
    const member: MemberConfig = {
      ...env.member('hsm-a', 0),
      token_label: undefined,
      token_serial: token.serial,
      pin_file: undefined,
      pin_env: 'HSMGATE_TEST_PIN',
    }
    const cluster = await HsmCluster.open([member], { logger: captureLogger().logger })
    try {
      expect(await cluster.random(16)).toHaveLength(16)
    } finally {
      await cluster.close()
      delete process.env.HSMGATE_TEST_PIN
    }
    expect(moduleUsers(SOFTHSM_MODULE)).toBe(0)
  })
})

describe('HsmCluster.close', () => {
  it('keeps the login of another cluster on the same token', async () => {
    const members = [env.member('hsm-a', 0)]
    const first = await HsmCluster.open(members, { logger: captureLogger().logger })
    const second = await HsmCluster.open(members, { logger: captureLogger().logger })
    try {
      await second.close()
      // Creating a private token object needs the user login that `second` must not end.
      const id = randomBytes(16)
      await first.generateAesKey({ id, label: 'test:login-kept' }, 256)
      const iv = randomBytes(12)
      const sealed = await first.encryptAesGcm(id, { iv, aad: Buffer.alloc(0), plaintext: iv })
      expect(sealed).toHaveLength(28)
      expect(first.status().map((member) => member.state)).toEqual(['healthy'])
    } finally {
      await second.close()
      await first.close()
    }
    expect(moduleUsers(SOFTHSM_MODULE)).toBe(0)
  })
})

describe('cluster KEK with a wrong SO PIN', () => {
  it('fails and leaves the user logged in', async () => {
    const cluster = await HsmCluster.open([env.member('hsm-a', 0)], {
      logger: captureLogger().logger,
    })
    try {
      const error = await cluster.provisionClusterKek({ soPins: { 'hsm-a': 'wrong-so-pin' } }).then(
        () => undefined,
        (caught: unknown) => caught as HsmError,
      )
      expect(error?.code).toBe('hsm_login_failed')
      expect(error?.message).toContain('CKR_PIN_INCORRECT')
      expect(error?.message).not.toContain('wrong-so-pin')
      // Creating a private token object works only if the user login was restored.
      await cluster.generateAesKey({ id: randomBytes(16), label: 'test:after-so' }, 256)
      expect(cluster.status()[0]?.state).toBe('healthy')
    } finally {
      await cluster.close()
    }
  })
})

describe('cluster KEK without SO PINs', () => {
  it('replicates keys without CKA_WRAP_WITH_TRUSTED', async () => {
    const cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
      logger: captureLogger().logger,
    })
    try {
      const id = randomBytes(16)
      await expect(cluster.generateAesKey({ id, label: 'before-kek' }, 256)).rejects.toMatchObject({
        code: 'hsm_key_not_found',
      })
      await cluster.provisionClusterKek()
      await cluster.generateAesKey({ id, label: 'test:untrusted' }, 256)
      for (const token of env.tokens) {
        await withToken(token, (pkcs11, session) => {
          const [kek] = findAll(pkcs11, session, [{ type: pkcs11js.CKA_ID, value: KEK_ID }])
          expect(attribute(pkcs11, session, kek as Buffer, pkcs11js.CKA_TRUSTED)[0]).toBe(0)
          const [key] = findAll(pkcs11, session, [{ type: pkcs11js.CKA_ID, value: id }])
          expect(attribute(pkcs11, session, key as Buffer, pkcs11js.CKA_WRAP_WITH_TRUSTED)[0]).toBe(
            0,
          )
        })
      }
    } finally {
      await cluster.close()
    }
  })

  it('rejects a KEK present on only some members', async () => {
    await withToken(tokenAt(1), (pkcs11, session) => {
      const [kek] = findAll(pkcs11, session, [{ type: pkcs11js.CKA_ID, value: KEK_ID }])
      pkcs11.C_DestroyObject(session, kek as Buffer)
    })
    const cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
      logger: captureLogger().logger,
    })
    try {
      await expect(cluster.provisionClusterKek()).rejects.toMatchObject({
        code: 'hsm_operation_failed',
        message: expect.stringContaining('exists on hsm-a but not on hsm-b'),
      })
    } finally {
      await cluster.close()
    }
  })
})
