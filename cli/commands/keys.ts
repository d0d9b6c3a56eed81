import { parseArgs } from 'node:util'
import { ApiError } from '../../crypto-backend/api-error.js'
import { HsmError } from '../../crypto-backend/hsm/index.js'
import { divergentMembers, inspectKey } from '../../crypto-backend/hsm/key-inventory.js'
import { keyMetadata } from '../../crypto-backend/keys/key-registry.js'
import { keyTypeOf, KeyTypeRequestError, tagsOf } from '../../store/key-type-request.js'
import type { Logger } from '../../log/logger.js'
import type { Classification } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'
import { breakGlassDestroy, breakGlassReason } from './keys-break-glass.js'
import { openKeysSession, type KeysSession } from './keys-session.js'

export const keysHelp = `Usage: hsmgate keys <subcommand> [options]

Manages the keys of a setup directly on its store and HSM cluster; a running gateway sees the
changes at once. Results go to stdout as JSON, logs to stderr.

Subcommands:
  list                     Print the newest version of every key, with its classification.
  create NAME --type TYPE  Create a key on every member. TYPE is ec, rsa, ed25519, aes,
                           aes-wrap or hmac, or a full type such as rsa-2048.
  classify NAME LEVEL      Set the classification of every version of the key to LEVEL
                           (public, internal, confidential or restricted). Policies and dual
                           control rules see it from the next request on.
  rotate NAME              Add a new version; encrypt and sign use it, old versions still
                           decrypt and verify.
  disable NAME             Refuse every use of the key until it is enabled again.
  enable NAME              Allow use of a disabled key again.
  destroy NAME --break-glass --reason TEXT
                           Remove the key material of every version from every member. This
                           cannot be undone; the name is never reused. The API destroys only
                           with the approvals that dual control requires; this local command
                           bypasses them, so it needs --break-glass and a reason, and first
                           appends an audit record naming the OS user and the reason.
  check [NAME]             Compare each key (or NAME) on every member and list the members that
                           miss it or hold a different one. Exits 1 when any does.

Options:
  --dir DIR       Directory of the setup made by 'hsmgate init'. Default: ./var
  --type TYPE     Key type for create (see above).
  --size BITS     RSA modulus (2048, 3072, 4096; default 3072), HMAC hash (256 or 384;
                  default 256) or AES key size (256). Only for create.
  --curve CURVE   EC curve for create: P-256 (default) or P-384.
  --owner APP     Application that owns the key, used by policies. Default: admin
  --tag TAG       Tag for create; may be repeated.
  --classification LEVEL
                  Classification for create: public, internal, confidential or restricted.
                  Default: confidential
  --break-glass   For destroy: destroy without dual control, audited.
  --reason TEXT   For destroy --break-glass: why, 1 to 500 characters; stored in the audit.
`

type Subcommand = (
  session: KeysSession,
  name: string | undefined,
  values: Options,
  logger: Logger,
) => Promise<unknown>
interface Options {
  type?: string
  size?: string
  curve?: string
  owner: string
  tag?: string[]
  classification?: string
  'break-glass': boolean
  reason?: string
  level?: string
}

const CLASSIFICATIONS: readonly Classification[] = [
  'public',
  'internal',
  'confidential',
  'restricted',
]

/** Checks a classification option or argument; throws CliError with exit code 2 naming it. */
function classificationOf(value: string | undefined, what: string): Classification | undefined {
  if (value === undefined) return undefined
  if (!(CLASSIFICATIONS as readonly string[]).includes(value)) {
    throw new CliError(
      `${what} '${value}' is not a classification; use one of ${CLASSIFICATIONS.join(', ')}`,
      EXIT.usage,
    )
  }
  return value as Classification
}

function required(name: string | undefined): string {
  if (name === undefined) throw new CliError('this subcommand needs a key NAME', EXIT.usage)
  return name
}

async function check(session: KeysSession, name: string | undefined) {
  const keys = (await session.store.listKeys()).filter((k) => name === undefined || k.name === name)
  if (name !== undefined && keys.length === 0) throw new CliError(`key '${name}' not found`)
  const versions = []
  for (const k of keys) versions.push(...(await session.store.keyVersions(k.name)))
  const report = []
  for (const key of versions) {
    if (key.state === 'destroyed') continue
    const states = await inspectKey(session.cluster!, Buffer.from(key.ckaId, 'hex'))
    const divergent = divergentMembers(states)
    report.push({
      key: key.name,
      version: key.version,
      ok: divergent.length === 0,
      members: states,
    })
  }
  return report
}

const SUBCOMMANDS: Record<string, { hsm: boolean; run: Subcommand }> = {
  list: { hsm: false, run: async (s) => (await s.store.listKeys()).map(keyMetadata) },
  create: {
    hsm: true,
    run: async (s, name, v) => {
      const body = {
        type: v.type,
        size: v.size === undefined ? undefined : Number(v.size),
        curve: v.curve,
        tags: v.tag,
      }
      const type = keyTypeOf(body)
      const key = await s.lifecycle!.create({
        name: required(name),
        type,
        owner: v.owner,
        tags: tagsOf(body),
        classification: classificationOf(v.classification, '--classification'),
      })
      return keyMetadata(key)
    },
  },
  classify: {
    hsm: true,
    run: async (s, name, v) =>
      (await s.lifecycle!.classify(required(name), v.level as Classification)).map(keyMetadata),
  },
  rotate: {
    hsm: true,
    run: async (s, name) => keyMetadata(await s.lifecycle!.rotate(required(name))),
  },
  disable: {
    hsm: true,
    run: async (s, name) =>
      (await s.lifecycle!.setState(required(name), 'disabled')).map(keyMetadata),
  },
  enable: {
    hsm: true,
    run: async (s, name) =>
      (await s.lifecycle!.setState(required(name), 'enabled')).map(keyMetadata),
  },
  destroy: {
    hsm: true,
    run: async (s, name, v, logger) => breakGlassDestroy(s, required(name), v.reason!, logger),
  },
  check: { hsm: true, run: check },
}

/** `hsmgate keys SUBCOMMAND`: prints the result as JSON; check exits 1 on any divergence. */
export async function runKeys(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: 'var' },
      type: { type: 'string' },
      size: { type: 'string' },
      curve: { type: 'string' },
      owner: { type: 'string', default: 'admin' },
      tag: { type: 'string', multiple: true },
      classification: { type: 'string' },
      'break-glass': { type: 'boolean', default: false },
      reason: { type: 'string' },
    },
  })
  const [subcommand, name, level, ...extra] = positionals
  const entry = SUBCOMMANDS[subcommand ?? '']
  if (
    entry === undefined ||
    extra.length > 0 ||
    (level !== undefined && subcommand !== 'classify')
  ) {
    const names = Object.keys(SUBCOMMANDS).join(', ')
    throw new CliError(`unknown subcommand '${subcommand ?? ''}'; use one of ${names}`, EXIT.usage)
  }
  const options: Options = { ...values, level }
  // Usage errors are reported before the HSM is opened.
  classificationOf(values.classification, '--classification')
  if (subcommand === 'classify') {
    required(name)
    if (level === undefined) throw new CliError('keys classify needs NAME and LEVEL', EXIT.usage)
    classificationOf(level, 'LEVEL')
  }
  if (subcommand === 'destroy') options.reason = breakGlassReason(required(name), values)
  const session = await openKeysSession(values.dir, logger, entry.hsm)
  try {
    const result = await entry.run(session, name, options, logger)
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    const diverged = subcommand === 'check' && (result as Array<{ ok: boolean }>).some((r) => !r.ok)
    return diverged ? EXIT.failure : EXIT.ok
  } catch (error) {
    if (
      error instanceof ApiError ||
      error instanceof HsmError ||
      error instanceof KeyTypeRequestError
    )
      throw new CliError(error.message)
    throw error
  } finally {
    await session.close()
  }
}
