import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import pkcs11js from 'pkcs11js'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { ckrValueOf } from '../../crypto-backend/hsm/errors.js'
import { acquireModule } from '../../crypto-backend/hsm/pkcs11-module.js'
import { findToken } from '../../crypto-backend/hsm/token-lookup.js'
import { initializeToken, randomPin } from '../../crypto-backend/hsm/token-setup.js'

/**
 * Support code for the tests of this folder: a throwaway SoftHSM2 configuration with its own
 * token directory, tokens made with initializeToken, and direct PKCS#11 access to one token.
 */

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so'

export interface TestToken {
  label: string
  serial: string
  soPin: string
  userPin: string
  pinFile: string
}

export interface SofthsmTestEnv {
  dir: string
  conf: string
  tokens: TestToken[]
  /** A member config for token `index`; pool_size 2 and a 5 s timeout unless overridden. */
  member(name: string, index: number, overrides?: Partial<MemberConfig>): MemberConfig
  cleanup(): void
}

/** Creates the configuration, sets SOFTHSM2_CONF and initializes one token per label. */
export async function createSofthsmEnv(labels: string[]): Promise<SofthsmTestEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-hsm-test-'))
  const conf = join(dir, 'softhsm2.conf')
  mkdirSync(join(dir, 'tokens'), { mode: 0o700 })
  const confText = [
    `directories.tokendir = ${join(dir, 'tokens')}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    '',
  ]
  writeFileSync(conf, confText.join('\n'))
  process.env.SOFTHSM2_CONF = conf

  const tokens: TestToken[] = []
  for (const label of labels) {
    const soPin = randomPin()
    const userPin = randomPin()
    const { serial } = await initializeToken(SOFTHSM_MODULE, label, soPin, userPin)
    const pinFile = join(dir, `${label}.pin`)
    writeFileSync(pinFile, `${userPin}\n`, { mode: 0o600 })
    tokens.push({ label, serial, soPin, userPin, pinFile })
  }
  return {
    dir,
    conf,
    tokens,
    member(name, index, overrides = {}) {
      const token = tokens[index]
      if (token === undefined) throw new Error(`no test token ${index}`)
      return {
        name,
        module: SOFTHSM_MODULE,
        token_label: token.label,
        pin_file: token.pinFile,
        pool_size: 2,
        operation_timeout_ms: 5_000,
        ...overrides,
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export interface CapturedLogger {
  logger: Logger
  lines: Array<Record<string, unknown>>
  messages(): string[]
}

/** Creates a pino logger at debug level that keeps its JSON lines in memory. */
export function captureLogger(): CapturedLogger {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    },
  })
  const logger = pino({ level: 'debug' }, stream)
  return { logger, lines, messages: () => lines.map((line) => String(line.msg)) }
}

/**
 * Runs `action` on a new session of one token, outside any cluster, to check what the token
 * itself holds. The session is logged in as user (the login may already exist in this process).
 */
export async function withToken<T>(
  token: TestToken,
  action: (
    pkcs11: pkcs11js.PKCS11,
    session: pkcs11js.Handle,
    slot: pkcs11js.Handle,
  ) => Promise<T> | T,
): Promise<T> {
  const module = acquireModule(SOFTHSM_MODULE)
  try {
    const { slot } = findToken(module.pkcs11, { label: token.label }, 'test', SOFTHSM_MODULE)
    const session = module.pkcs11.C_OpenSession(
      slot,
      pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
    )
    try {
      loginUser(module.pkcs11, session, token.userPin)
      return await action(module.pkcs11, session, slot)
    } finally {
      module.pkcs11.C_CloseSession(session)
    }
  } finally {
    module.release()
  }
}

function loginUser(pkcs11: pkcs11js.PKCS11, session: pkcs11js.Handle, pin: string): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, pin)
  } catch (error) {
    if (ckrValueOf(error) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw error
  }
}

/** Returns all handles of objects that match `template` on the session's token. */
export function findAll(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  template: pkcs11js.Template,
): pkcs11js.Handle[] {
  pkcs11.C_FindObjectsInit(session, template)
  try {
    return pkcs11.C_FindObjects(session, 100)
  } finally {
    pkcs11.C_FindObjectsFinal(session)
  }
}

/** Reads one attribute of an object. */
export function attribute(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  handle: pkcs11js.Handle,
  type: number,
): Buffer {
  const [result] = pkcs11.C_GetAttributeValue(session, handle, [{ type }])
  if (result === undefined) throw new Error(`attribute ${type} missing`)
  return result.value
}
