import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  activateCredential,
  attestationKeyPublic,
  DEFAULT_TPM_SETTINGS,
  encodeCredentialFile,
  readEkCertificate,
  type TpmSettings,
} from '../../client/tpm/index.js'
import { makeCredential } from '../../crypto-backend/pki/tpm/make-credential.js'
import { parseTpmPublic } from '../../crypto-backend/pki/tpm/tpm-public.js'
import { execFileAsync } from '../helpers/gateway-process.js'
import { startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.js'

// The gateway's software TPM2_MakeCredential, checked against tpm2-tools 5.4: the output of
// `tpm2_makecredential -T none` and ours must both be accepted by TPM2_ActivateCredential of
// swtpm behind tpm2-abrmd.

let tpm: SoftwareTpm
let settings: TpmSettings
let akName: Buffer
let ekCertificate: X509Certificate
let dir: string

beforeAll(async () => {
  tpm = await startSoftwareTpm()
  process.env.DBUS_SESSION_BUS_ADDRESS = tpm.env.DBUS_SESSION_BUS_ADDRESS
  settings = { ...DEFAULT_TPM_SETTINGS, tcti: tpm.tcti }
  akName = parseTpmPublic(await attestationKeyPublic(settings, true), 'ak').name
  const ek = await readEkCertificate(tpm.tcti)
  if (ek === undefined) throw new Error('swtpm_setup wrote no RSA EK certificate')
  ekCertificate = new X509Certificate(ek.der)
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-credential-'))
}, 120_000)

afterAll(async () => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  await tpm?.stop()
})

/** Activates a credential file's contents with the TPM and returns the recovered secret. */
function activate(file: Buffer, algorithm: 'rsa' | 'ecc'): Promise<Buffer> {
  const blobSize = file.readUInt16BE(8)
  const credentialBlob = file.subarray(8, 10 + blobSize)
  const encryptedSecret = file.subarray(10 + blobSize)
  return activateCredential(settings, algorithm, {
    challenge_id: '00',
    credential_blob: credentialBlob.toString('base64'),
    encrypted_secret: encryptedSecret.toString('base64'),
  })
}

/** Returns the PEM public key of the EK that tpm2_createek makes for `algorithm`. */
async function ekPublicPem(algorithm: 'rsa' | 'ecc'): Promise<string> {
  const context = join(dir, `ek-${algorithm}.ctx`)
  const pem = join(dir, `ek-${algorithm}.pem`)
  await execFileAsync('tpm2_createek', ['-c', context, '-G', algorithm, '-Q'], { env: tpm.env })
  await execFileAsync('tpm2_readpublic', ['-c', context, '-f', 'pem', '-o', pem, '-Q'], {
    env: tpm.env,
  })
  // tpm2-abrmd flushes the transient EK when the tool's connection closes.
  return readFileSync(pem, 'utf8')
}

describe('software MakeCredential', () => {
  it('tpm2_makecredential output activates', async () => {
    const secret = randomBytes(32)
    const pem = join(dir, 'ek-cert.pem')
    writeFileSync(pem, ekCertificate.publicKey.export({ type: 'spki', format: 'pem' }))
    writeFileSync(join(dir, 'secret'), secret)
    await execFileAsync(
      'tpm2_makecredential',
      [
        ...['-T', 'none', '-G', 'rsa', '-u', pem, '-s', join(dir, 'secret')],
        ...['-n', akName.toString('hex'), '-o', join(dir, 'tools.cred')],
      ],
      { env: tpm.env },
    )
    const file = readFileSync(join(dir, 'tools.cred'))
    expect(await activate(file, 'rsa')).toEqual(secret)

    // Our encoding of a credential has the same layout and size as the tool's.
    const ours = makeCredential(ekCertificate.publicKey, akName, secret)
    const encoded = encodeCredentialFile(ours.credentialBlob, ours.encryptedSecret)
    expect(encoded.length).toBe(file.length)
    expect(encoded.subarray(0, 10)).toEqual(file.subarray(0, 10))
  }, 60_000)

  it('activates for the RSA EK of the EK certificate', async () => {
    const secret = randomBytes(32)
    const made = makeCredential(ekCertificate.publicKey, akName, secret)
    const file = encodeCredentialFile(made.credentialBlob, made.encryptedSecret)
    expect(await activate(file, 'rsa')).toEqual(secret)
  }, 60_000)

  it('activates for an ECC P-256 EK', async () => {
    const secret = randomBytes(20)
    const ekKey = createPublicKey(await ekPublicPem('ecc'))
    const made = makeCredential(ekKey, akName, secret)
    const file = encodeCredentialFile(made.credentialBlob, made.encryptedSecret)
    expect(await activate(file, 'ecc')).toEqual(secret)
  }, 60_000)

  it('fails for another object name', async () => {
    const other = Buffer.concat([akName.subarray(0, 2), randomBytes(32)])
    const made = makeCredential(ekCertificate.publicKey, other, randomBytes(32))
    const file = encodeCredentialFile(made.credentialBlob, made.encryptedSecret)
    await expect(activate(file, 'rsa')).rejects.toThrow(/tpm2_activatecredential/)
  }, 60_000)

  it('fails for another EK', async () => {
    const made = makeCredential(createPublicKey(await ekPublicPem('ecc')), akName, randomBytes(32))
    const file = encodeCredentialFile(made.credentialBlob, made.encryptedSecret)
    await expect(activate(file, 'rsa')).rejects.toThrow(/tpm2_activatecredential/)
  }, 60_000)

  it('rejects an unsupported EK key type', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey
    expect(() => makeCredential(p384, akName, randomBytes(32))).toThrow(/RSA 2048 and ECC P-256/)
  })
})
