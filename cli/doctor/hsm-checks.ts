import { readFileSync } from 'node:fs'
import type { LoadedConfig } from '../../config/load.js'
import type { MemberConfig } from '../../config/schema.js'
import { acquireModule } from '../../crypto-backend/hsm/pkcs11-module.js'
import { findToken } from '../../crypto-backend/hsm/token-lookup.js'
import { memberTokenSelector } from '../../crypto-backend/hsm/token-login.js'
import { fail, ok, warn, type CheckResult } from './check-result.js'
import { fileMode } from './host-checks.js'

/** PIN file modes that keep the PIN from every user but the owner. */
const PIN_FILE_MODES = [0o600, 0o400]

/**
 * Loads each member's PKCS#11 module and looks for its token by label or serial. The check
 * neither logs in nor reads the PIN.
 */
export function checkMembers(config: LoadedConfig): CheckResult[] {
  Object.assign(process.env, config.hsm.environment)
  return config.hsm.members.flatMap((member) => [
    checkToken(member),
    ...(member.pin_file === undefined ? [checkPinEnv(member)] : [checkPinFile(member)]),
  ])
}

function checkToken(member: MemberConfig): CheckResult {
  const name = `hsm member ${member.name}`
  let module
  try {
    module = acquireModule(member.module)
  } catch (error) {
    return moduleLoadFailure(name, member, error as Error)
  }
  try {
    const token = findToken(module.pkcs11, memberTokenSelector(member), member.name, member.module)
    return ok(name, `module loads, token '${token.label}' serial ${token.serial} present`)
  } catch (error) {
    return fail(
      name,
      (error as Error).message,
      'initialize the token (softhsm2-util --init-token) or fix token_label / token_serial; ' +
        'for SoftHSM2 also check SOFTHSM2_CONF in hsm.environment',
    )
  } finally {
    module.release()
  }
}

/**
 * Describes a module that does not load: a missing file needs the library installed or the
 * path corrected, a file that is not a loadable library needs the right build.
 */
function moduleLoadFailure(name: string, member: MemberConfig, error: Error): CheckResult {
  const cause = (error.cause as NodeJS.ErrnoException | undefined)?.code
  // The loader's message ends with its own advice after '; ', which the fix below replaces.
  const detail = error.message.split('; ')[0] ?? error.message
  const field = `the module of hsm member '${member.name}' in hsm.members`
  if (cause === 'ENOENT') {
    return fail(
      name,
      detail,
      `install the PKCS#11 library (SoftHSM2: apt-get install softhsm2, which provides ` +
        `/usr/lib/softhsm/libsofthsm2.so) or set ${field} to the path where it is installed`,
    )
  }
  return fail(
    name,
    detail,
    `set ${field} to a PKCS#11 library built for this platform; ${member.module} cannot be ` +
      'loaded as one',
  )
}

function checkPinFile(member: MemberConfig): CheckResult {
  const path = member.pin_file ?? ''
  const name = `pin file ${member.name}`
  const found = fileMode(path)
  if (found === undefined) {
    return fail(name, `${path} does not exist`, `create it with the token's user PIN, mode 0600`)
  }
  const mode = `0${found.mode.toString(8)}`
  if (!PIN_FILE_MODES.includes(found.mode)) {
    return fail(
      name,
      `${path} has mode ${mode}; group or others may read the PIN`,
      `chmod 600 ${path} (0400 also works); only the crypto backend's user may read it`,
    )
  }
  const uid = process.getuid?.()
  if (uid !== undefined && found.uid !== uid) {
    return warn(
      name,
      `${path} is owned by uid ${found.uid}, not by uid ${uid} that runs this check`,
      `the crypto backend must run as uid ${found.uid}; run doctor as that user, or chown the file`,
    )
  }
  if (readFileSync(path, 'utf8').trim() === '') {
    return fail(name, `${path} is empty`, "write the token's user PIN into it")
  }
  return ok(name, `${path} mode ${mode}, owned by uid ${found.uid}`)
}

function checkPinEnv(member: MemberConfig): CheckResult {
  const name = `pin env ${member.name}`
  const variable = member.pin_env ?? ''
  if ((process.env[variable] ?? '') === '') {
    return warn(
      name,
      `${variable} is not set in this shell`,
      `set ${variable} in the crypto backend's environment (systemd: LoadCredential or Environment)`,
    )
  }
  return ok(name, `${variable} is set`)
}
