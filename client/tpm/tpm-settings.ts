import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../atomic-files.js'
import { checkTcti } from './tcti.js'
import type { TpmSettings } from './tpm-key.js'

/** A TPM-enrolled agent directory: where its TPM is, and where to fetch attestation nonces. */
export interface TpmAgentSettings extends TpmSettings {
  /** Base URL of the gateway's enrollment listener, which issues attestation nonces. */
  readonly enrollGateway: string
}

const FILE = 'tpm.json'

/** Writes DIR/tpm.json, which marks the directory's key as TPM-resident for renewals. */
export function writeTpmSettings(dir: string, settings: TpmAgentSettings): void {
  const json = {
    tcti: settings.tcti,
    parent: settings.parent,
    ak: settings.ak,
    certify_handle: settings.certifyHandle,
    enroll_gateway: settings.enrollGateway,
  }
  writeFileAtomic(join(dir, FILE), JSON.stringify(json, null, 2) + '\n')
}

/** Reads DIR/tpm.json, or returns undefined for a directory with a software key. */
export function readTpmSettings(dir: string): TpmAgentSettings | undefined {
  const path = join(dir, FILE)
  if (!existsSync(path)) return undefined
  let json: Record<string, unknown>
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${(error as Error).message}; enroll again`)
  }
  const handle = (field: string): number => {
    const value = json[field]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0x81000000) {
      throw new Error(`${path}: '${field}' must be a persistent TPM handle; enroll again`)
    }
    return value
  }
  if (typeof json.tcti !== 'string' || typeof json.enroll_gateway !== 'string') {
    throw new Error(`${path}: 'tcti' and 'enroll_gateway' must be strings; enroll again`)
  }
  return {
    tcti: checkTcti(json.tcti),
    parent: handle('parent'),
    ak: handle('ak'),
    certifyHandle: handle('certify_handle'),
    enrollGateway: json.enroll_gateway,
  }
}
