import type { Logger } from '../log/logger.js'
import { RepeatLimiter } from '../log/repeat-limiter.js'
import type { AlertPayload } from './alert.js'

/** Sends one alert to the webhook; the promise settles after the last attempt and never rejects. */
export interface WebhookSender {
  send(payload: AlertPayload): Promise<void>
}

export interface WebhookOptions {
  readonly url: string
  /** Attempts per alert, the first included. */
  readonly attempts: number
  /** Delay before the second attempt; it doubles for each further one. */
  readonly backoffMs: number
  readonly timeoutMs: number
  readonly logger: Logger
  /** Deliveries in flight at most; an alert beyond them is logged as dropped. */
  readonly maxPending?: number
}

const DEFAULT_MAX_PENDING = 100

/**
 * Creates a sender that POSTs the alert as JSON. A network error, a timeout, a 429 or a 5xx
 * response is retried after the backoff, doubled each time, until `attempts` are used up; any
 * other non-2xx response is final. Each failure is logged with the attempt number.
 */
export function webhookSender(options: WebhookOptions): WebhookSender {
  let pending = 0
  const maxPending = options.maxPending ?? DEFAULT_MAX_PENDING
  const log = options.logger
  // An unreachable receiver fails every attempt of every alert; repeats become summary lines.
  const failures = new RepeatLimiter(log)

  const attempt = async (body: string): Promise<'sent' | 'retry' | 'final'> => {
    try {
      const response = await fetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      })
      await response.body?.cancel()
      if (response.ok) return 'sent'
      failures.warn(
        `status:${response.status}`,
        { url: options.url, status: response.status },
        'alert webhook responded with an error status',
      )
      return response.status === 429 || response.status >= 500 ? 'retry' : 'final'
    } catch (error) {
      const cause = error instanceof Error ? error.name : ''
      failures.warn(
        `request:${cause}`,
        { url: options.url, err: error },
        'alert webhook request failed',
      )
      return 'retry'
    }
  }

  return {
    async send(payload) {
      if (pending >= maxPending) {
        failures.error(
          'backlog',
          { alert: payload.rule, app: payload.app },
          'alert webhook backlog full; alert not sent',
        )
        return
      }
      pending++
      try {
        const body = JSON.stringify(payload)
        for (let number = 1; number <= options.attempts; number++) {
          const result = await attempt(body)
          if (result === 'sent') {
            log.info(
              { alert: payload.rule, app: payload.app, attempt: number },
              'alert webhook delivered',
            )
            return
          }
          if (result === 'final' || number === options.attempts) break
          await new Promise((resolve) => setTimeout(resolve, options.backoffMs * 2 ** (number - 1)))
        }
        failures.error(
          'undelivered',
          { alert: payload.rule, app: payload.app, attempts: options.attempts },
          'alert webhook delivery failed; the alert is only in the log',
        )
      } finally {
        pending--
      }
    },
  }
}
