import pkcs11js from 'pkcs11js'
import { HsmError, callSync, ckrValueOf } from './errors.js'

export interface SessionPoolOptions {
  member: string
  size: number
  /** How long `acquire` waits for a free session before it fails with 'hsm_timeout'. */
  acquireTimeoutMs: number
}

/** A session taken from the pool. Calls of `release` after the first are ignored. */
export interface SessionLease {
  readonly session: pkcs11js.Handle
  /**
   * Returns the session to the pool. With `discard`, the pool closes it and opens a fresh one,
   * because after a failed call the session may still hold an active operation (for example
   * after CKR_BUFFER_TOO_SMALL) and the next C_*Init on it would fail with CKR_OPERATION_ACTIVE.
   */
  release(options?: { discard?: boolean }): void
}

interface Waiter {
  resolve(lease: SessionLease): void
  reject(error: HsmError): void
  timer?: NodeJS.Timeout
}

const SESSION_FLAGS = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION
/** How often `close` checks whether busy sessions came back. */
const DRAIN_POLL_MS = 10

/**
 * A fixed set of read/write sessions on one token. A PKCS#11 session runs one operation at a
 * time, so each session is lent to one caller. Callers beyond the pool size wait in FIFO order.
 */
export class SessionPool {
  private readonly idle: pkcs11js.Handle[] = []
  private readonly busy = new Set<pkcs11js.Handle>()
  private readonly waiters: Waiter[] = []
  private state: 'open' | 'draining' | 'closed' | 'abandoned' = 'open'

  constructor(
    private readonly pkcs11: pkcs11js.PKCS11,
    private readonly slot: pkcs11js.Handle,
    private readonly options: SessionPoolOptions,
  ) {}

  /** Opens `size` sessions. On failure it closes those it opened and throws. */
  open(): void {
    try {
      for (let i = 0; i < this.options.size; i += 1) this.idle.push(this.openSession())
    } catch (error) {
      this.closeSessions(this.idle.splice(0))
      throw error
    }
  }

  /** Number of open sessions, idle and busy. */
  get sessions(): number {
    return this.idle.length + this.busy.size
  }

  get inUse(): number {
    return this.busy.size
  }

  /** Logs the user in on this token; CKR_USER_ALREADY_LOGGED_IN counts as success. */
  login(pin: string): void {
    const session = this.idle[0]
    if (session === undefined) throw this.unavailable('no open session to log in with')
    try {
      this.pkcs11.C_Login(session, pkcs11js.CKU_USER, pin)
    } catch (error) {
      if (ckrValueOf(error) === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return
      throw error
    }
  }

  /** Lends a session, waiting up to `acquireTimeoutMs` in FIFO order. */
  acquire(): Promise<SessionLease> {
    if (this.state !== 'open') return Promise.reject(this.unavailable('session pool is closed'))
    const session = this.idle.shift()
    if (session !== undefined) return Promise.resolve(this.lend(session))
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject }
      waiter.timer = setTimeout(() => this.expire(waiter), this.options.acquireTimeoutMs)
      this.waiters.push(waiter)
    })
  }

  /**
   * Stops lending: rejects waiting callers, waits up to `drainTimeoutMs` for busy sessions to
   * come back, calls C_Logout first when `logout` is set, and closes every session. A session
   * that is still busy after the wait is closed when its call returns.
   */
  async close(drainTimeoutMs: number, options: { logout?: boolean } = {}): Promise<void> {
    if (this.state !== 'open') return
    this.state = 'draining'
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(this.unavailable('session pool was closed while waiting'))
    }
    const deadline = Date.now() + drainTimeoutMs
    while (this.busy.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
    }
    if (options.logout === true) this.logout()
    this.state = 'closed'
    this.closeSessions(this.idle.splice(0))
  }

  /**
   * Stops lending without any PKCS#11 call, for a module that is about to be initialized again:
   * C_Finalize ends these sessions, and their handle numbers may then belong to new sessions.
   * Waiting callers are rejected, and busy sessions are dropped when they come back.
   */
  abandon(): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(this.unavailable('session pool was abandoned while waiting'))
    }
    this.state = 'abandoned'
    this.idle.splice(0)
  }

  /** Ends the login of the application on this token; failures are ignored while closing. */
  private logout(): void {
    const session = this.idle[0]
    if (session === undefined) return
    try {
      this.pkcs11.C_Logout(session)
    } catch {
      // Not logged in any more (all sessions were closed underneath) or the token is gone.
    }
  }

  private lend(session: pkcs11js.Handle): SessionLease {
    this.busy.add(session)
    let released = false
    return {
      session,
      release: (options) => {
        if (released) return
        released = true
        this.giveBack(session, options?.discard === true)
      },
    }
  }

  private giveBack(session: pkcs11js.Handle, discard: boolean): void {
    this.busy.delete(session)
    if (this.state === 'abandoned') return
    if (this.state === 'closed') return this.closeSessions([session])
    if (this.state === 'draining' && !discard) {
      this.idle.push(session)
      return
    }
    let next: pkcs11js.Handle | undefined = session
    if (discard) next = this.replace(session)
    if (next === undefined) return
    const waiter = this.waiters.shift()
    if (waiter === undefined) {
      this.idle.push(next)
      return
    }
    clearTimeout(waiter.timer)
    waiter.resolve(this.lend(next))
  }

  /**
   * Opens the replacement before closing the old session, because closing the last session of
   * the application on a token also ends its login. Returns undefined when no session opens.
   */
  private replace(session: pkcs11js.Handle): pkcs11js.Handle | undefined {
    let fresh: pkcs11js.Handle | undefined
    try {
      fresh = this.openSession()
    } catch {
      fresh = undefined
    }
    this.closeSessions([session])
    return fresh
  }

  private expire(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter)
    if (index < 0) return
    this.waiters.splice(index, 1)
    const { member, size, acquireTimeoutMs } = this.options
    waiter.reject(
      new HsmError(
        'hsm_timeout',
        `member '${member}': no free session within ${acquireTimeoutMs} ms (pool_size ${size}, ` +
          `${this.busy.size} busy); raise pool_size or operation_timeout_ms if the load is expected`,
        { member },
      ),
    )
  }

  private openSession(): pkcs11js.Handle {
    return callSync(this.options.member, 'C_OpenSession', () =>
      this.pkcs11.C_OpenSession(this.slot, SESSION_FLAGS),
    )
  }

  private closeSessions(sessions: pkcs11js.Handle[]): void {
    for (const session of sessions) {
      try {
        this.pkcs11.C_CloseSession(session)
      } catch {
        // The session is already gone (closed underneath or the token was removed).
      }
    }
  }

  private unavailable(reason: string): HsmError {
    const { member } = this.options
    return new HsmError('hsm_unavailable', `member '${member}': ${reason}`, { member })
  }
}
