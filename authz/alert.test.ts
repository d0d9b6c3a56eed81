import { createServer, type Server } from 'node:http'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createAlerter, type Alert, type AlertPayload } from './alert.js'
import { webhookSender } from './alert-webhook.js'

function capture() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    },
  })
  return { logger: pino({ level: 'debug' }, stream), lines }
}

/** A webhook receiver on 127.0.0.1 that responds 503 to the first `failures` POSTs. */
async function receiver(failures: number) {
  const received: AlertPayload[] = []
  let attempts = 0
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => (body += chunk.toString()))
    req.on('end', () => {
      attempts++
      if (attempts <= failures) {
        res.writeHead(503).end()
        return
      }
      received.push(JSON.parse(body) as AlertPayload)
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  servers.push(server)
  return { url: `http://127.0.0.1:${port}/alerts`, received, attempts: () => attempts }
}

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

const alert: Alert = {
  rule: 'new_source_address',
  app: 'payments',
  subject: '127.0.0.2',
  message: 'application payments used from new address 127.0.0.2',
  decisionId: 'd_test',
  actions: [],
  details: { serial: '0a1b' },
}

function alerter(url: string, attempts: number, logger = capture().logger, now = () => 1_000) {
  return createAlerter({
    logger,
    node: 'node-1',
    dedupWindowMs: 60_000,
    now,
    webhook: webhookSender({ url, attempts, backoffMs: 20, timeoutMs: 2_000, logger }),
  })
}

describe('alerter', () => {
  it('logs the alert and posts it as JSON', async () => {
    const hook = await receiver(0)
    const { logger, lines } = capture()
    const alerts = alerter(hook.url, 3, logger)
    alerts.raise(alert)
    await alerts.idle()
    expect(lines.some((l) => l.alert === 'new_source_address' && l.level === 50)).toBe(true)
    expect(hook.received).toHaveLength(1)
    expect(hook.received[0]).toMatchObject({
      type: 'hsmgate.alert',
      rule: 'new_source_address',
      app: 'payments',
      subject: '127.0.0.2',
      decision_id: 'd_test',
      node: 'node-1',
    })
  })

  it('retries a failing receiver with backoff until it accepts', async () => {
    const hook = await receiver(2)
    const alerts = alerter(hook.url, 5)
    alerts.raise(alert)
    await alerts.idle()
    expect(hook.attempts()).toBe(3)
    expect(hook.received).toHaveLength(1)
  })

  it('gives up after the configured attempts', async () => {
    const hook = await receiver(10)
    const { logger, lines } = capture()
    const alerts = alerter(hook.url, 3, logger)
    alerts.raise(alert)
    await alerts.idle()
    expect(hook.attempts()).toBe(3)
    expect(hook.received).toHaveLength(0)
    expect(lines.some((l) => String(l.msg).includes('delivery failed'))).toBe(true)
  })

  it('sends the same rule, app and subject once per window', async () => {
    const hook = await receiver(0)
    let now = 1_000
    const alerts = alerter(hook.url, 3, capture().logger, () => now)
    alerts.raise(alert)
    alerts.raise(alert)
    alerts.raise({ ...alert, subject: '127.0.0.3' })
    now += 60_000
    alerts.raise(alert)
    await alerts.idle()
    expect(hook.received.map((a) => a.subject)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.2'])
  })

  it('carries only the fields of the alert', async () => {
    const hook = await receiver(0)
    const alerts = alerter(hook.url, 1)
    alerts.raise(alert)
    await alerts.idle()
    expect(Object.keys(hook.received[0] ?? {}).sort()).toEqual(
      [
        'actions',
        'app',
        'decision_id',
        'details',
        'message',
        'node',
        'rule',
        'subject',
        'time',
        'type',
      ].sort(),
    )
  })
})
