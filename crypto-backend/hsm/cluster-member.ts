import pkcs11js from 'pkcs11js'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { RepeatLimiter } from '../../log/repeat-limiter.js'
import { HsmError, ckrValueOf, toHsmError } from './errors.js'
import { HandleCache } from './handle-cache.js'
import { findObject } from './object-search.js'
import { acquireModule, moduleUsers, type Pkcs11Module } from './pkcs11-module.js'
import type { SessionPool } from './session-pool.js'
import { findToken } from './token-lookup.js'
import { loginUser, memberTokenSelector, openLoggedInPool } from './token-login.js'

export type MemberState = 'healthy' | 'failed'

/**
 * CK_RV values after which a failed member's module is initialized again before the next
 * attempt: the module lost its device or connection (p11-kit-client.so returns
 * CKR_DEVICE_ERROR for good once its server is gone) or a failed re-initialization left it
 * uninitialized.
 */
const REINITIALIZE_AFTER = new Set<number>([
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
])

/** Counters since the process started; they only grow. */
export interface MemberCounters {
  /** Calls run on the member (operations, health checks and key management). */
  operations: number
  /** Calls that failed, for any reason. */
  errors: number
  /** Calls that failed because of the member (device, session, login or timeout). */
  faults: number
  timeouts: number
  /** Operations that came to this member as the retry of another member's fault. */
  retries: number
  /** Transitions from healthy to failed. */
  failovers: number
  /** Transitions from failed back to healthy. */
  recoveries: number
}

export interface MemberStatus {
  name: string
  state: MemberState
  lastError?: string
  sessions: number
  inUse: number
  counters: MemberCounters
}

/**
 * One HSM of the cluster: its PKCS#11 module, the token found by label or serial, a logged-in
 * session pool, a cache of object handles and a health state.
 */
export class ClusterMember {
  readonly name: string
  private state: MemberState = 'healthy'
  private lastError?: string
  private readonly handles = new HandleCache()
  private rechecking = false
  /** Counts repeats of fault and health check logs into one summary line a minute. */
  private readonly repeats: RepeatLimiter
  private readonly counters: MemberCounters = {
    operations: 0,
    errors: 0,
    faults: 0,
    timeouts: 0,
    retries: 0,
    failovers: 0,
    recoveries: 0,
  }

  private constructor(
    private readonly config: MemberConfig,
    private readonly module: Pkcs11Module,
    private slot: pkcs11js.Handle,
    private pool: SessionPool,
    private readonly logger: Logger,
  ) {
    this.name = config.name
    this.repeats = new RepeatLimiter(logger)
  }

  /** Loads the module, finds the token, opens the pool and logs in; no retry on failure. */
  static open(config: MemberConfig, logger: Logger): ClusterMember {
    const module = acquireModule(config.module)
    try {
      const token = findToken(
        module.pkcs11,
        memberTokenSelector(config),
        config.name,
        config.module,
      )
      const pool = openLoggedInPool(module.pkcs11, token.slot, config, logger)
      module.retainLogin(token.slot.toString('hex'))
      logger.info(
        { member: config.name, token: token.label, serial: token.serial },
        'hsm member opened',
      )
      return new ClusterMember(config, module, token.slot, pool, logger)
    } catch (error) {
      module.release()
      throw error
    }
  }

  get pkcs11(): pkcs11js.PKCS11 {
    return this.module.pkcs11
  }

  get healthy(): boolean {
    return this.state === 'healthy'
  }

  get operationTimeoutMs(): number {
    return this.config.operation_timeout_ms
  }

  status(): MemberStatus {
    const status: MemberStatus = {
      name: this.name,
      state: this.state,
      sessions: this.pool.sessions,
      inUse: this.pool.inUse,
      counters: { ...this.counters },
    }
    if (this.lastError !== undefined) status.lastError = this.lastError
    return status
  }

  /**
   * Runs `action` on a pooled session. Waiting for a session and the action itself are each
   * limited to operation_timeout_ms. A member fault marks the member failed. After a timeout
   * the session goes back to the pool only when the PKCS#11 call has really returned, because
   * the call itself cannot be cancelled.
   */
  async run<T>(operation: string, action: (session: pkcs11js.Handle) => Promise<T>): Promise<T> {
    this.counters.operations += 1
    try {
      const lease = await this.pool.acquire()
      const work = Promise.resolve().then(() => action(lease.session))
      work.then(
        () => lease.release(),
        () => lease.release({ discard: true }),
      )
      return await withTimeout(work, this.operationTimeoutMs, () => this.timeoutError(operation))
    } catch (error) {
      const hsmError = toHsmError(error, this.name, operation)
      this.counters.errors += 1
      if (hsmError.code === 'hsm_timeout') this.counters.timeouts += 1
      if (hsmError.memberFault) {
        this.counters.faults += 1
        this.markFailed(hsmError)
      }
      throw hsmError
    }
  }

  /**
   * Runs `action` while this caller has every session of the pool, so that no other operation
   * runs on the token. Used to switch the login between security officer and user.
   */
  async exclusive<T>(
    operation: string,
    action: (session: pkcs11js.Handle) => Promise<T>,
  ): Promise<T> {
    const leases = []
    try {
      const count = this.pool.sessions
      for (let i = 0; i < count; i += 1) leases.push(await this.pool.acquire())
      const first = leases[0]
      if (first === undefined)
        throw new HsmError('hsm_unavailable', `member '${this.name}': no open session`, {
          member: this.name,
        })
      return await action(first.session)
    } catch (error) {
      throw toHsmError(error, this.name, operation)
    } finally {
      for (const lease of leases) lease.release()
    }
  }

  /** Returns the handle of the object with this CKA_ID and class, from the cache or the token. */
  findObject(
    session: pkcs11js.Handle,
    id: Buffer,
    objectClass: number,
  ): pkcs11js.Handle | undefined {
    const cached = this.handles.get(id, objectClass)
    if (cached !== undefined) return cached
    const handle = findObject(this.pkcs11, session, this.name, id, objectClass)
    if (handle !== undefined) this.handles.set(id, objectClass, handle)
    return handle
  }

  rememberObject(id: Buffer, objectClass: number, handle: pkcs11js.Handle): void {
    this.handles.set(id, objectClass, handle)
  }

  forgetObject(id: Buffer, objectClass: number): void {
    this.handles.delete(id, objectClass)
  }

  /** Logs the user in again on `session`; used after the login was switched to the SO. */
  loginUser(session: pkcs11js.Handle): void {
    loginUser(this.pkcs11, session, this.config, this.logger)
  }

  /** Counts an operation that reached this member as the retry of another member's fault. */
  noteRetry(): void {
    this.counters.retries += 1
  }

  /**
   * Health check of a healthy member: C_GetTokenInfo and C_GetSessionInfo on a pooled session,
   * within operation_timeout_ms. A fault marks the member failed, like any other call.
   */
  async probe(): Promise<void> {
    if (this.state !== 'healthy') return
    try {
      await this.run('health check', async (session) => {
        this.pkcs11.C_GetTokenInfo(this.slot)
        this.pkcs11.C_GetSessionInfo(session)
      })
    } catch {
      // run() has marked the member failed when the error was a member fault.
    }
  }

  markFailed(error: HsmError): void {
    this.lastError = error.message
    if (this.state === 'failed') return
    this.state = 'failed'
    this.counters.failovers += 1
    this.repeats.warn(
      `failed:${error.code}`,
      { member: this.name, code: error.code, ckr: error.pkcs11?.ckr, err: error.message },
      `hsm member ${this.name}: healthy -> failed`,
    )
  }

  /**
   * Probes a failed member (C_GetSlotList, C_GetTokenInfo, fresh sessions and C_Login) and
   * brings it back to healthy with a new session pool when that works.
   */
  async recheck(): Promise<void> {
    if (this.state !== 'failed' || this.rechecking) return
    this.rechecking = true
    try {
      let fresh: { slot: pkcs11js.Handle; pool: SessionPool }
      try {
        fresh = this.openFreshPool()
      } catch (error) {
        if (!this.reinitializeModule(error)) throw error
        fresh = this.openFreshPool()
      }
      const old = this.pool
      this.pool = fresh.pool
      this.slot = fresh.slot
      this.handles.clear()
      await old.close(0)
      this.state = 'healthy'
      this.counters.recoveries += 1
      this.logger.info({ member: this.name }, `hsm member ${this.name}: failed -> healthy`)
    } catch (error) {
      this.lastError = toHsmError(error, this.name, 'recheck').message
      this.repeats.warn(
        'recheck',
        { member: this.name, err: this.lastError },
        `hsm member ${this.name}: health check failed; the member stays failed`,
      )
    } finally {
      this.rechecking = false
    }
  }

  private openFreshPool(): { slot: pkcs11js.Handle; pool: SessionPool } {
    const selector = memberTokenSelector(this.config)
    const token = findToken(this.pkcs11, selector, this.name, this.config.module)
    return {
      slot: token.slot,
      pool: openLoggedInPool(this.pkcs11, token.slot, this.config, this.logger),
    }
  }

  /**
   * Initializes the module again after a device-level failure when this member is its only user
   * and none of its calls is still running, because C_Finalize under a running call is undefined
   * behaviour. The old pool is abandoned first: its session handles die with C_Finalize and may
   * be reused by new sessions. Returns true when the module was initialized again.
   */
  private reinitializeModule(error: unknown): boolean {
    const ckr = error instanceof HsmError ? error.pkcs11?.value : ckrValueOf(error)
    // p11-kit-client.so connects at C_Initialize: initialized while its server was down, it
    // lists no token until it is initialized again.
    const tokenGone = error instanceof HsmError && error.code === 'hsm_token_not_found'
    if (!tokenGone && (ckr === undefined || !REINITIALIZE_AFTER.has(ckr))) return false
    if (this.pool.inUse > 0) return false
    if (moduleUsers(this.config.module) !== 1) return false
    this.pool.abandon()
    if (!this.module.reinitialize()) return false
    this.logger.info(
      { member: this.name, ckr: error instanceof HsmError ? error.pkcs11?.ckr : ckr },
      'PKCS#11 module initialized again',
    )
    return true
  }

  /**
   * Waits for running calls (up to operation_timeout_ms), logs out when no other user in this
   * process is logged in to the token, closes the sessions and releases the module.
   */
  async close(): Promise<void> {
    const logout = this.module.releaseLogin(this.slot.toString('hex'))
    await this.pool.close(this.operationTimeoutMs, { logout })
    this.module.release()
  }

  private timeoutError(operation: string): HsmError {
    return new HsmError(
      'hsm_timeout',
      `member '${this.name}': ${operation} did not finish within ${this.operationTimeoutMs} ms ` +
        '(operation_timeout_ms); check the HSM and its connection',
      { member: this.name },
    )
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => HsmError): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms)
  })
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}
