import { request } from 'node:http'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { countAlert, countQuotaRejection, recordDecision } from './authz-metrics.js'
import { timeAuditWrite } from './audit-metrics.js'
import { watchCertificates } from './certificate-metrics.js'
import { watchHsmCluster } from './hsm-metrics.js'
import { startMetricsServer, type MetricsServer } from './metrics-server.js'
import { metricsRegistry } from './registry.js'

const silent = pino({ level: 'silent' })
let server: MetricsServer

beforeAll(async () => {
  server = await startMetricsServer(0, silent)
})
afterAll(() => server.close())

function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

describe('metrics server', () => {
  it('serves the Prometheus text format', async () => {
    const res = await get('/metrics')
    expect(res.status).toBe(200)
    expect(res.type).toContain('text/plain')
    expect(res.body).toContain('# TYPE hsmgate_authz_decisions_total counter')
  })

  it('rejects other paths and methods', async () => {
    expect((await get('/')).status).toBe(404)
    expect((await get('/metrics', 'POST')).status).toBe(405)
  })
})

describe('decision metrics', () => {
  it('counts by operation, key, application and result', async () => {
    const labels = { operation: 'sign', key: 'k1', application: 'app1', allowed: true, status: 200 }
    recordDecision(labels, 0.002)
    recordDecision(labels, 0.003)
    recordDecision({ ...labels, key: undefined, allowed: false, status: 404 }, 0.001)
    const text = await metricsRegistry.metrics()
    expect(text).toContain(
      'hsmgate_authz_decisions_total{operation="sign",key="k1",application="app1",result="allow",status="200"} 2',
    )
    expect(text).toContain(
      'hsmgate_authz_decisions_total{operation="sign",key="-",application="app1",result="deny",status="404"} 1',
    )
    expect(text).toContain('hsmgate_authz_check_seconds_count{operation="sign",result="allow"} 2')
  })

  it('counts quota rejections and alerts', async () => {
    countQuotaRejection({ application: 'app1', key: 'k1', quota: 'q1' })
    countAlert({ rule: 'rate', application: 'app1' })
    const text = await metricsRegistry.metrics()
    expect(text).toContain(
      'hsmgate_quota_rejections_total{application="app1",key="k1",quota="q1"} 1',
    )
    expect(text).toContain(
      'hsmgate_alerts_total{rule="rate",application="app1",severity="warning"} 1',
    )
  })
})

describe('audit write metrics', () => {
  it('observes success and counts failure', async () => {
    await timeAuditWrite('backend', async () => 1)
    await expect(
      timeAuditWrite('backend', async () => {
        throw new Error('disk full')
      }),
    ).rejects.toThrow('disk full')
    const text = await metricsRegistry.metrics()
    expect(text).toContain('hsmgate_audit_write_seconds_count{writer="backend"} 1')
    expect(text).toContain('hsmgate_audit_write_failures_total{writer="backend"} 1')
  })
})

describe('hsm member metrics', () => {
  it('reports each member at scrape time', async () => {
    const counters = {
      operations: 7,
      errors: 2,
      faults: 1,
      timeouts: 0,
      retries: 1,
      failovers: 1,
      recoveries: 0,
    }
    watchHsmCluster({
      status: () => [
        { name: 'a', state: 'healthy', sessions: 4, inUse: 1, counters },
        { name: 'b', state: 'failed', sessions: 0, inUse: 0, counters, lastError: 'x' },
      ],
    })
    const text = await metricsRegistry.metrics()
    expect(text).toContain('hsmgate_hsm_member_healthy{member="a"} 1')
    expect(text).toContain('hsmgate_hsm_member_healthy{member="b"} 0')
    expect(text).toContain('hsmgate_hsm_sessions{member="a",use="in_use"} 1')
    expect(text).toContain('hsmgate_hsm_failovers_total{member="b"} 1')
    expect(text).toContain('hsmgate_hsm_operations_total{member="a"} 7')
  })
})

describe('certificate metrics', () => {
  it('flags an unreadable certificate', async () => {
    watchCertificates([{ role: 'test-broken', read: () => 'not a certificate' }])
    const text = await metricsRegistry.metrics()
    expect(text).toContain('hsmgate_certificate_read_failed{role="test-broken"} 1')
    expect(text).not.toContain('hsmgate_certificate_expiry_seconds{role="test-broken"}')
  })
})
