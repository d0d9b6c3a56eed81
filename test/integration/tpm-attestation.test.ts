import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiError } from '../../crypto-backend/api-error.js'
import { verifyTpmAttestation, type TpmEvidence } from '../../crypto-backend/pki/tpm/index.js'
import { parseTpmPublic } from '../../crypto-backend/pki/tpm/tpm-public.js'
import {
  attestationKeyPublic,
  createAttestedKey,
  DEFAULT_TPM_SETTINGS,
  type AttestedKey,
  type TpmSettings,
} from '../../client/tpm/tpm-key.js'
import { checkCsr } from '../../crypto-backend/pki/csr-check.js'
import type { AttestationKey } from '../../store/index.js'
import { startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.js'

// The agent's TPM key creation and TPM2_Certify against swtpm behind tpm2-abrmd, checked by the
// gateway's verifier directly. The gateway path (nonce, token, certificate) is in tpm-gateway.

let tpm: SoftwareTpm
let settings: TpmSettings
let akPublic: Buffer
let attested: AttestedKey
let csrSpki: Buffer
const nonce = Buffer.alloc(32, 7)
const registered = new Map<string, AttestationKey>()
const records = { attestationKey: async (name: string) => registered.get(name) }

beforeAll(async () => {
  tpm = await startSoftwareTpm()
  Object.assign(process.env, { DBUS_SESSION_BUS_ADDRESS: tpm.env.DBUS_SESSION_BUS_ADDRESS })
  settings = { ...DEFAULT_TPM_SETTINGS, tcti: tpm.tcti }
  akPublic = await attestationKeyPublic(settings, true)
  const name = parseTpmPublic(akPublic, 'ak').name.toString('hex')
  registered.set(name, { name, host: 'app1.example', publicArea: '', registeredAt: '' })
  attested = await createAttestedKey(settings, nonce)
  csrSpki = (await checkCsr(attested.csrPem)).publicKeySpki
}, 120_000)

afterAll(async () => {
  await tpm?.stop()
})

function evidence(overrides: Partial<TpmEvidence> = {}): TpmEvidence {
  const fields = attested.evidence
  return {
    attest: Buffer.from(fields.attest, 'base64'),
    signature: Buffer.from(fields.signature, 'base64'),
    publicArea: Buffer.from(fields.public, 'base64'),
    akPublicArea: Buffer.from(fields.ak_public, 'base64'),
    ...overrides,
  }
}

async function rejection(run: () => Promise<unknown>): Promise<string> {
  try {
    await run()
  } catch (error) {
    if (error instanceof ApiError) return error.code
    throw error
  }
  return 'accepted'
}

describe('TPM attestation of a client key', () => {
  it('writes a TSS2 key file and a CSR of the TPM key', async () => {
    expect(attested.keyPem).toContain('-----BEGIN TSS2 PRIVATE KEY-----')
    expect(attested.csrPem).toContain('-----BEGIN CERTIFICATE REQUEST-----')
  })

  it('verifies with the registered attestation key', async () => {
    const verified = await verifyTpmAttestation(evidence(), csrSpki, 'app1.example', records)
    expect(verified.akName).toMatch(/^000b[0-9a-f]{64}$/)
    expect(verified.nonceHash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('rejects an attestation key registered for another host', async () => {
    expect(
      await rejection(() => verifyTpmAttestation(evidence(), csrSpki, 'other.example', records)),
    ).toBe('attestation_key_unknown')
  })

  it('rejects tampered certify info', async () => {
    const attest = Buffer.from(evidence().attest)
    attest[attest.length - 40]! ^= 0x01
    expect(
      await rejection(() =>
        verifyTpmAttestation(evidence({ attest }), csrSpki, 'app1.example', records),
      ),
    ).toBe('attestation_signature_invalid')
  })

  it('rejects a software key claimed as TPM-resident', async () => {
    const software = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const spki = software.publicKey.export({ type: 'spki', format: 'der' })
    expect(
      await rejection(() => verifyTpmAttestation(evidence(), spki, 'app1.example', records)),
    ).toBe('attestation_mismatch')
  })

  it('rejects a public area that is not the certified one', async () => {
    const other = await createAttestedKey(settings, nonce)
    const publicArea = Buffer.from(other.evidence.public, 'base64')
    expect(
      await rejection(() =>
        verifyTpmAttestation(evidence({ publicArea }), csrSpki, 'app1.example', records),
      ),
    ).toBe('attestation_mismatch')
  }, 60_000)

  it('rejects a truncated structure with a format error', async () => {
    const attest = evidence().attest.subarray(0, 20)
    expect(
      await rejection(() =>
        verifyTpmAttestation(evidence({ attest }), csrSpki, 'app1.example', records),
      ),
    ).toBe('attestation_invalid')
  })
})
