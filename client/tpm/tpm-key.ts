import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certifyPersistent } from './tpm-certify.js'
import { DEFAULT_TCTI } from './tcti.js'
import { runTool, runTpmTool, TpmToolError } from './tpm-tools.js'
import { encodeTss2PrivateKey } from './tss2-key-file.js'
import { readEkCertificate, type EkAlgorithm } from './ek-certificate.js'

/** Where the agent finds its TPM and which persistent handles it uses. */
export interface TpmSettings {
  readonly tcti: string
  /** Persistent storage key under which client keys are created. */
  readonly parent: number
  /** Persistent attestation key: a restricted ECC P-256 signing key. */
  readonly ak: number
  /** Persistent handle that holds a new key for the moment of its certification. */
  readonly certifyHandle: number
}

export const DEFAULT_TPM_SETTINGS: TpmSettings = {
  tcti: DEFAULT_TCTI,
  parent: 0x81000001,
  ak: 0x81010002,
  certifyHandle: 0x81000100,
}

/** Attributes of a client key: created in this TPM, never duplicated, for signing. */
const CLIENT_KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign'
const AK_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda'
const SRK_ATTRIBUTES =
  'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda'

/** The TPMS_ATTEST evidence that `POST /v1/enroll` and renewal accept, in base64. */
export interface TpmEvidenceFields {
  readonly attest: string
  readonly signature: string
  readonly public: string
  readonly ak_public: string
  /** DER EK certificate from the TPM's NV storage, present when the TPM has one. */
  readonly ek_certificate?: string
}

/** A new TPM-resident client key: its TSS2 key file, a CSR it signed, and its attestation. */
export interface AttestedKey {
  readonly keyPem: string
  readonly csrPem: string
  readonly evidence: TpmEvidenceFields
  /** Algorithm of the EK whose certificate is in the evidence, for credential activation. */
  readonly ekAlgorithm?: EkAlgorithm
}

export function handleText(handle: number): string {
  return `0x${handle.toString(16)}`
}

async function withWorkDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-tpm-'))
  try {
    return await run(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Returns the TPMT_PUBLIC at a persistent handle, or undefined when the handle is empty. */
async function readPublic(settings: TpmSettings, handle: number): Promise<Buffer | undefined> {
  return withWorkDir(async (dir) => {
    const file = join(dir, 'public')
    try {
      await runTpmTool('tpm2_readpublic', ['-c', handleText(handle), '-o', file], settings.tcti)
    } catch (error) {
      if (error instanceof TpmToolError && /handle|0x18b|0x28b/i.test(error.message)) {
        return undefined
      }
      throw error
    }
    return publicArea(readFileSync(file), `public area at ${handleText(handle)}`)
  })
}

/** Strips the size of a TPM2B_PUBLIC, checking that it matches the data. */
function publicArea(blob: Buffer, what: string): Buffer {
  if (blob.length < 2 || blob.readUInt16BE(0) !== blob.length - 2) {
    throw new Error(`${what} is not a TPM2B_PUBLIC`)
  }
  return blob.subarray(2)
}

/** Creates a primary key with `attributes` in `hierarchy` and makes it persistent at `handle`. */
async function persistPrimary(
  settings: TpmSettings,
  hierarchy: 'o' | 'e',
  algorithm: string,
  attributes: string,
  handle: number,
): Promise<void> {
  await withWorkDir(async (dir) => {
    const context = join(dir, 'primary.ctx')
    const { tcti } = settings
    const create = ['-C', hierarchy, '-G', algorithm, '-g', 'sha256', '-a', attributes]
    await runTool('tpm2_createprimary', [...create, '-c', context, '-Q'], tcti)
    try {
      await runTool('tpm2_evictcontrol', ['-C', 'o', '-c', context, handleText(handle)], tcti)
    } finally {
      await runTool('tpm2_flushcontext', [context], tcti).catch(() => undefined)
    }
  })
}

/**
 * Returns the attestation key's TPMT_PUBLIC, first creating the storage key and the
 * attestation key as persistent primaries when `create` is set and they are missing.
 */
export async function attestationKeyPublic(
  settings: TpmSettings,
  create: boolean,
): Promise<Buffer> {
  if (create) await ensureParent(settings)
  const existing = await readPublic(settings, settings.ak)
  if (existing !== undefined) return existing
  if (!create) {
    throw new Error(
      `the TPM has no attestation key at ${handleText(settings.ak)}; run 'hsmgate agent tpm-ak', ` +
        'and unless the gateway trusts EK certificates, have an operator register the key ' +
        "with 'hsmgate tpm register-ak'",
    )
  }
  await persistPrimary(settings, 'e', 'ecc256:ecdsa-sha256:null', AK_ATTRIBUTES, settings.ak)
  const created = await readPublic(settings, settings.ak)
  if (created === undefined) throw new Error(`no key at ${handleText(settings.ak)} after creation`)
  return created
}

async function ensureParent(settings: TpmSettings): Promise<void> {
  if ((await readPublic(settings, settings.parent)) !== undefined) return
  await persistPrimary(settings, 'o', 'ecc256:aes128cfb', SRK_ATTRIBUTES, settings.parent)
}

/**
 * Creates an ECC P-256 signing key in the TPM under the persistent parent, has the attestation
 * key certify it over `nonce` with TPM2_Certify, and signs a CSR with it through the
 * tpm2-openssl provider. The key is persistent only while it is certified. The evidence
 * includes the TPM's EK certificate when the TPM has one.
 */
export async function createAttestedKey(
  settings: TpmSettings,
  nonce: Buffer,
): Promise<AttestedKey> {
  await ensureParent(settings)
  const akPublic = await attestationKeyPublic(settings, false)
  if ((await readPublic(settings, settings.certifyHandle)) !== undefined) {
    const handle = handleText(settings.certifyHandle)
    throw new Error(
      `persistent handle ${handle} is in use; the agent needs it free while it certifies a ` +
        `key. If an interrupted agent left it, remove it with 'tpm2_evictcontrol -C o -c ${handle}'`,
    )
  }
  return withWorkDir(async (dir) => {
    const files = {
      pub: join(dir, 'key.pub'),
      priv: join(dir, 'key.priv'),
      ctx: join(dir, 'key.ctx'),
    }
    const { tcti } = settings
    const parent = handleText(settings.parent)
    await runTpmTool(
      'tpm2_create',
      [
        '-C',
        parent,
        '-G',
        'ecc256',
        '-g',
        'sha256',
        '-a',
        CLIENT_KEY_ATTRIBUTES,
        '-u',
        files.pub,
        '-r',
        files.priv,
        '-Q',
      ],
      tcti,
    )
    const certified = await certifyLoaded(settings, files, nonce)
    const publicBlob = readFileSync(files.pub)
    const keyPem = encodeTss2PrivateKey(settings.parent, publicBlob, readFileSync(files.priv))
    writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o600 })
    const csrPem = await signCsr(tcti, join(dir, 'key.pem'))
    const ek = await readEkCertificate(tcti)
    return {
      keyPem,
      csrPem,
      evidence: {
        attest: certified.attest.toString('base64'),
        signature: certified.signature.toString('base64'),
        public: publicArea(publicBlob, 'the new key').toString('base64'),
        ak_public: akPublic.toString('base64'),
        ...(ek === undefined ? {} : { ek_certificate: ek.der.toString('base64') }),
      },
      ...(ek === undefined ? {} : { ekAlgorithm: ek.algorithm }),
    }
  })
}

/** Loads the key, makes it persistent, certifies it and removes the persistent copy. */
async function certifyLoaded(
  settings: TpmSettings,
  files: { pub: string; priv: string; ctx: string },
  nonce: Buffer,
): Promise<{ attest: Buffer; signature: Buffer }> {
  const { tcti } = settings
  const handle = handleText(settings.certifyHandle)
  await runTool(
    'tpm2_load',
    ['-C', handleText(settings.parent), '-u', files.pub, '-r', files.priv, '-c', files.ctx, '-Q'],
    tcti,
  )
  try {
    await runTool('tpm2_evictcontrol', ['-C', 'o', '-c', files.ctx, handle, '-Q'], tcti)
  } finally {
    await runTool('tpm2_flushcontext', [files.ctx], tcti).catch(() => undefined)
  }
  try {
    return await certifyPersistent(tcti, settings.certifyHandle, settings.ak, nonce)
  } finally {
    await runTpmTool('tpm2_evictcontrol', ['-C', 'o', '-c', handle, '-Q'], tcti)
  }
}

/** Signs a PKCS#10 request with the TPM key through the tpm2-openssl provider. */
async function signCsr(tcti: string, keyFile: string): Promise<string> {
  const { stdout } = await runTool(
    'openssl',
    [
      'req',
      '-new',
      '-provider',
      'tpm2',
      '-provider',
      'default',
      '-propquery',
      '?provider=tpm2',
      '-key',
      keyFile,
      '-subj',
      '/CN=hsmgate-agent',
      '-sha256',
    ],
    tcti,
  )
  return stdout.toString('utf8')
}
