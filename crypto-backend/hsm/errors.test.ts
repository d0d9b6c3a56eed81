import pkcs11js from 'pkcs11js'
import { describe, expect, it } from 'vitest'
import { HsmError, ckrValueOf, toHsmError } from './errors.js'

describe('ckrValueOf', () => {
  it('reads the code of a Pkcs11Error', () => {
    const error = new pkcs11js.Pkcs11Error('CKR_DEVICE_ERROR:48', 48, 'C_Sign')
    expect(ckrValueOf(error)).toBe(pkcs11js.CKR_DEVICE_ERROR)
  })

  it('reads the CKR_NAME:NUMBER form of unwrapped native errors', () => {
    expect(ckrValueOf(new Error('CKR_ATTRIBUTE_READ_ONLY:16'))).toBe(16)
  })

  it('returns undefined for other errors', () => {
    expect(ckrValueOf(new TypeError('Argument 1 has wrong type'))).toBeUndefined()
    expect(ckrValueOf('text')).toBeUndefined()
  })
})

describe('toHsmError', () => {
  const cases: Array<[number, string, boolean]> = [
    [pkcs11js.CKR_DEVICE_ERROR, 'hsm_operation_failed', true],
    [pkcs11js.CKR_SESSION_HANDLE_INVALID, 'hsm_operation_failed', true],
    [pkcs11js.CKR_TOKEN_NOT_PRESENT, 'hsm_operation_failed', true],
    [pkcs11js.CKR_DATA_LEN_RANGE, 'hsm_operation_failed', false],
    [pkcs11js.CKR_KEY_HANDLE_INVALID, 'hsm_key_not_found', false],
    [pkcs11js.CKR_PIN_INCORRECT, 'hsm_login_failed', false],
  ]
  for (const [value, code, memberFault] of cases) {
    it(`maps CK_RV 0x${value.toString(16)} to ${code}`, () => {
      const error = toHsmError(new pkcs11js.Pkcs11Error(`X:${value}`, value), 'hsm-a', 'C_Sign')
      expect(error.code).toBe(code)
      expect(error.memberFault).toBe(memberFault)
      expect(error.member).toBe('hsm-a')
      expect(error.pkcs11?.function).toBe('C_Sign')
      expect(error.pkcs11?.value).toBe(value)
      expect(error.message).toContain("member 'hsm-a': C_Sign failed with CKR_")
    })
  }

  it('keeps the original error as cause', () => {
    const original = new Error('CKR_GENERAL_ERROR:5')
    const error = toHsmError(original, 'hsm-b', 'C_CreateObject')
    expect(error.cause).toBe(original)
    expect(error.pkcs11?.ckr).toBe('CKR_GENERAL_ERROR')
  })

  it('passes an HsmError through', () => {
    const error = new HsmError('hsm_timeout', 'timed out')
    expect(toHsmError(error, 'hsm-a', 'C_Sign')).toBe(error)
    expect(error.memberFault).toBe(true)
  })
})
