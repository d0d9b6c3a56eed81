import type pkcs11js from 'pkcs11js'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { HsmError, toHsmError } from './errors.js'
import { HandleCache } from './handle-cache.js'
import { findObject } from './object-search.js'
import { acquireModule, type Pkcs11Module } from './pkcs11-module.js'
import type { SessionPool } from './session-pool.js'
import { findToken } from './token-lookup.js'
import { loginUser, memberTokenSelector, openLoggedInPool } from './token-login.js'

export type MemberState = 'healthy' | 'failed'

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
    this.logger.warn(
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
      const token = findToken(
        this.pkcs11,
        memberTokenSelector(this.config),
        this.name,
        this.config.module,
      )
      const fresh = openLoggedInPool(this.pkcs11, token.slot, this.config, this.logger)
      const old = this.pool
      this.pool = fresh
      this.slot = token.slot
      this.handles.clear()
      await old.close(0)
      this.state = 'healthy'
      this.counters.recoveries += 1
      this.logger.info({ member: this.name }, `hsm member ${this.name}: failed -> healthy`)
    } catch (error) {
      this.lastError = toHsmError(error, this.name, 'recheck').message
      this.logger.debug({ member: this.name, err: this.lastError }, 'hsm member still failing')
    } finally {
      this.rechecking = false
    }
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
