import { realpathSync } from 'node:fs'
import pkcs11js from 'pkcs11js'
import { HsmError, ckrValueOf } from './errors.js'

/**
 * One use of a PKCS#11 module that is shared by the whole process. A module is loaded and
 * initialized once per process, because a second C_Initialize of the same library fails with
 * CKR_CRYPTOKI_ALREADY_INITIALIZED. C_Finalize ends the library for every user in the process,
 * so the registry calls it only when the last user releases the module.
 */
export interface Pkcs11Module {
  readonly pkcs11: pkcs11js.PKCS11
  /** The path that the caller passed, for messages. */
  readonly path: string
  /**
   * Records one more login user of a token; returns true for the first one. The PKCS#11 login
   * state belongs to the application and token, so it is shared by every user in the process.
   */
  retainLogin(tokenKey: string): boolean
  /** Records that a login user of a token is done; returns true for the last one. */
  releaseLogin(tokenKey: string): boolean
  /** Ends this use; the last release of a module calls C_Finalize and unloads the library. */
  release(): void
  /**
   * Calls C_Finalize and C_Initialize again, which ends every session and login of the module.
   * A module that lost its connection to the token (p11-kit-client.so after its server was
   * restarted) returns CKR_DEVICE_ERROR until then. Returns false without doing anything when
   * another user shares the module or the library was initialized outside this registry;
   * throws HsmError when C_Initialize fails, and a later call tries again.
   */
  reinitialize(): boolean
}

interface LoadedModule {
  pkcs11: pkcs11js.PKCS11
  users: number
  /** False when the library was already initialized by code outside this registry. */
  ownsInitialize: boolean
  logins: Map<string, number>
  /** False after a C_Finalize of `reinitialize` whose C_Initialize failed. */
  initialized: boolean
}

const loaded = new Map<string, LoadedModule>()

/** Loads and initializes the module at `path`, or shares the instance that is already loaded. */
export function acquireModule(path: string): Pkcs11Module {
  const key = canonicalPath(path)
  let entry = loaded.get(key)
  if (entry === undefined) {
    entry = loadModule(path)
    loaded.set(key, entry)
  }
  entry.users += 1
  return handleFor(key, path, entry)
}

/** Returns how many users hold the module at `path`; 0 when it is not loaded. */
export function moduleUsers(path: string): number {
  return loaded.get(canonicalPath(path))?.users ?? 0
}

function canonicalPath(path: string): string {
  try {
    return realpathSync(path)
  } catch (error) {
    throw new HsmError(
      'hsm_module_load_failed',
      `PKCS#11 module ${path} cannot be opened (${(error as NodeJS.ErrnoException).code}); ` +
        "check the member's module path",
      { cause: error },
    )
  }
}

function loadModule(path: string): LoadedModule {
  const pkcs11 = new pkcs11js.PKCS11()
  try {
    pkcs11.load(path)
  } catch (error) {
    throw new HsmError(
      'hsm_module_load_failed',
      `PKCS#11 module ${path} failed to load: ${(error as Error).message}; check that the file ` +
        'is a PKCS#11 library built for this platform',
      { cause: error },
    )
  }
  const ownsInitialize = initialize(pkcs11, path)
  return { pkcs11, users: 0, ownsInitialize, logins: new Map(), initialized: true }
}

/**
 * Calls C_Initialize with CKF_OS_LOCKING_OK, without which SoftHSM2 turns its own locking off
 * and concurrent sessions in the libuv thread pool would race. Returns false when the library
 * was already initialized in this process by someone else; that user then owns C_Finalize.
 */
function initialize(pkcs11: pkcs11js.PKCS11, path: string): boolean {
  try {
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    return true
  } catch (error) {
    if (ckrValueOf(error) === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) return false
    pkcs11.close()
    throw new HsmError(
      'hsm_module_load_failed',
      `C_Initialize of PKCS#11 module ${path} failed: ${(error as Error).message}; for SoftHSM2 ` +
        'check that SOFTHSM2_CONF names a readable configuration whose token directory exists',
      { cause: error },
    )
  }
}

function handleFor(key: string, path: string, entry: LoadedModule): Pkcs11Module {
  let released = false
  return {
    pkcs11: entry.pkcs11,
    path,
    retainLogin(tokenKey) {
      const count = (entry.logins.get(tokenKey) ?? 0) + 1
      entry.logins.set(tokenKey, count)
      return count === 1
    },
    releaseLogin(tokenKey) {
      const count = (entry.logins.get(tokenKey) ?? 1) - 1
      if (count <= 0) entry.logins.delete(tokenKey)
      else entry.logins.set(tokenKey, count)
      return count <= 0
    },
    reinitialize() {
      if (released || entry.users !== 1 || !entry.ownsInitialize) return false
      if (entry.initialized) {
        entry.initialized = false
        try {
          entry.pkcs11.C_Finalize()
        } catch {
          // A module whose connection broke may fail C_Finalize; C_Initialize below decides.
        }
      }
      entry.logins.clear()
      try {
        entry.pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
      } catch (error) {
        throw new HsmError(
          'hsm_unavailable',
          `C_Initialize of PKCS#11 module ${path} failed again: ${(error as Error).message}`,
          { cause: error },
        )
      }
      entry.initialized = true
      return true
    },
    release() {
      if (released) return
      released = true
      entry.users -= 1
      if (entry.users === 0) unload(key, entry)
    },
  }
}

function unload(key: string, entry: LoadedModule): void {
  loaded.delete(key)
  try {
    if (entry.ownsInitialize && entry.initialized) entry.pkcs11.C_Finalize()
  } finally {
    entry.pkcs11.close()
  }
}
