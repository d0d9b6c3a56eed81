import { describe, expect, it } from 'vitest'
import { parseCertifyResponse } from './tpm-certify.js'
import { tpmOutputHint } from './tpm-response-hint.js'

describe('TPM response hint', () => {
  it('explains 0x902 in tpm2-tools output', () => {
    const text =
      'ERROR:esys:src/tss2-esys/api/Esys_Load.c:324:Esys_Load_Finish() Received a non-TPM Error\nErrorCode (0x00000902)'
    expect(tpmOutputHint(text)).toMatch(/resource manager.*tabrmd/)
  })

  it('explains 0x902 in a TPM2_Certify response', () => {
    const response = Buffer.alloc(10)
    response.writeUInt16BE(0x8001, 0)
    response.writeUInt32BE(10, 2)
    response.writeUInt32BE(0x902, 6)
    expect(() => parseCertifyResponse(response)).toThrow(/0x902; the TPM ran out of object memory/)
  })

  it('adds nothing for other codes', () => {
    expect(tpmOutputHint('ErrorCode (0x0000018b)')).toBeUndefined()
  })
})
