import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { parseDocument } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, sqliteFile } from '../../config/load.js'
import { normalizeSerial } from '../../store/certificate-serial.js'
import { AUDIT_FAULT_ENV } from '../../store/audit-fault.js'
import { parseReceipt, RECEIPT_HEADERS } from '../../store/audit-receipt.js'
import { SqliteStore } from '../../store/sqlite-store.js'
import type { AuditRecord } from '../../store/store.js'
import { CLI, initGateway, startUp, type TestGateway } from '../helpers/gateway-process.js'
import { appCredentials } from '../helpers/tls-client.js'

/**
 * The audit of a whole running gateway with Envoy, authz, backend and SoftHSM2. Records carry the
 * client's certificate serial and address, and responses carry receipts that
 * `hsmgate audit verify` proves. Checkpoints are signed while the gateway runs and at a clean
 * stop. While audit writes fail under load, no client receives a result whose record is missing.
 */

const WRITER = 'node-1'
const AUTHZ = 'node-1/authz'
let gateway: TestGateway
let dir: string
let faultFile: string
let storeFile: string

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  json: Record<string, unknown>
}

function sign(message: string): Promise<Reply> {
  const payload = Buffer.from(JSON.stringify({ message: Buffer.from(message).toString('base64') }))
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.port,
        method: 'POST',
        path: '/v1/keys/payments-signing/sign',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 30_000,
        ...appCredentials(dir, 'payments'),
      },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.on('end', () => {
          let json: Record<string, unknown> = {}
          try {
            json = JSON.parse(body) as Record<string, unknown>
          } catch {
            json = { unparsed: body }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json })
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(payload)
  })
}

function auditCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    process.execPath,
    [CLI, 'audit', ...args, '--config', join(dir, 'hsmgate.yaml')],
    { encoding: 'utf8', timeout: 60_000 },
  )
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

async function recordsOf(writer: string): Promise<AuditRecord[]> {
  const store = new SqliteStore(storeFile)
  try {
    return await store.auditRecords(writer)
  } finally {
    await store.close()
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  const setup = await initGateway()
  dir = setup.dir
  const configFile = join(dir, 'hsmgate.yaml')
  const document = parseDocument(readFileSync(configFile, 'utf8'))
  document.set('audit', { checkpoint_records: 1000, checkpoint_interval: '2s' })
  writeFileSync(configFile, document.toString())
  storeFile = sqliteFile(loadConfig(configFile), 'the audit gateway test')
  faultFile = join(dir, 'audit-fault')
  process.env[AUDIT_FAULT_ENV] = faultFile
  gateway = await startUp(dir, setup.port)
})

afterAll(async () => {
  delete process.env[AUDIT_FAULT_ENV]
  await gateway?.stop()
  gateway?.cleanup()
})

describe('gateway audit', () => {
  it('records the certificate serial and address in both chains', async () => {
    const reply = await sign('serial and address')
    expect(reply.status).toBe(200)
    const decisionId = reply.headers[RECEIPT_HEADERS.decisionId]
    expect(decisionId).toBe(reply.json.decision_id)

    const serialLine = execFileSync(
      'openssl',
      ['x509', '-in', join(dir, 'apps', 'payments', 'client.crt'), '-noout', '-serial'],
      { encoding: 'utf8' },
    )
    const serial = normalizeSerial(serialLine.trim().replace(/^serial=/, ''))
    for (const writer of [WRITER, AUTHZ]) {
      const record = (await recordsOf(writer)).find((r) => r.decisionId === decisionId)
      expect(record, writer).toMatchObject({ certSerial: serial, sourceAddress: '127.0.0.1' })
    }
  })

  it('returns a receipt that verify proves once a checkpoint covers it', async () => {
    const reply = await sign('receipt')
    expect(reply.status).toBe(200)
    const text = String(reply.headers[RECEIPT_HEADERS.receipt])
    const receipt = parseReceipt(text)
    expect(receipt.writer).toBe(WRITER)
    expect(receipt.decision_id).toBe(reply.json.decision_id)
    expect(String(receipt.seq)).toBe(reply.headers[RECEIPT_HEADERS.seq])
    expect(receipt.hash).toBe(reply.headers[RECEIPT_HEADERS.hash])
    const record = (await recordsOf(WRITER)).find((r) => r.seq === receipt.seq)
    expect(record?.hash).toBe(receipt.hash)

    // The checkpoint interval is 2 s and the heads are read every second.
    let result = auditCli(['verify', '--receipt', text])
    for (let i = 0; i < 20 && result.code === 3; i++) {
      await sleep(500)
      result = auditCli(['verify', '--receipt', text])
    }
    expect(result.stderr).toBe('')
    expect(result.stdout).toContain('covered: ')
    expect(result.code).toBe(0)
  })

  it('withholds every result whose record cannot be written under load', async () => {
    const replies: Reply[] = []
    let stop = false
    const worker = async (id: number): Promise<void> => {
      for (let i = 0; i < 2000 && !stop; i++) replies.push(await sign(`load ${id} ${i}`))
    }
    const workers = Array.from({ length: 6 }, (_, id) => worker(id))

    // Phases: writes work, the backend's writes fail, writes work, every write fails, writes work.
    const phases: [string | undefined, number][] = [
      [undefined, 1500],
      [WRITER, 2500],
      [undefined, 1500],
      ['*', 2500],
      [undefined, 1500],
    ]
    try {
      for (const [writers, ms] of phases) {
        if (writers === undefined) rmSync(faultFile, { force: true })
        else writeFileSync(faultFile, `${writers}\n`)
        await sleep(ms)
      }
    } finally {
      stop = true
      rmSync(faultFile, { force: true })
      await Promise.all(workers)
    }

    const backend = new Map((await recordsOf(WRITER)).map((r) => [r.decisionId, r]))
    const authz = new Map((await recordsOf(AUTHZ)).map((r) => [r.decisionId, r]))
    const ok = replies.filter((r) => r.status === 200)
    const failed = replies.filter((r) => r.status !== 200)
    const errorOf = (r: Reply) =>
      r.json.error as { code: string; message: string; decision_id: string }
    const backendFailures = failed.filter((r) => errorOf(r).message.includes('result is withheld'))
    const authzFailures = failed.filter((r) => errorOf(r).message.includes('could not be audited'))

    expect(ok.length).toBeGreaterThan(0)
    expect(backendFailures.length).toBeGreaterThan(0)
    expect(authzFailures.length).toBeGreaterThan(0)
    for (const reply of ok) {
      const decisionId = String(reply.json.decision_id)
      expect(backend.get(decisionId)?.hash, decisionId).toBe(reply.headers[RECEIPT_HEADERS.hash])
      expect(authz.has(decisionId), decisionId).toBe(true)
    }
    for (const reply of failed) {
      expect(reply.status).toBe(503)
      expect(errorOf(reply).code).toBe('audit_unavailable')
      expect(backend.has(errorOf(reply).decision_id)).toBe(false)
    }
    expect(backendFailures.length + authzFailures.length).toBe(failed.length)
  })

  it('leaves chains that verify and are fully covered after a clean stop', async () => {
    const code = await gateway.stop()
    expect(code).toBe(0)
    const result = auditCli(['verify', '--json'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const report = JSON.parse(result.stdout) as {
      writers: { writer: string; headSeq: number; coveredSeq: number }[]
    }
    const backend = report.writers.find((w) => w.writer === WRITER)
    expect(backend?.headSeq).toBeGreaterThan(0)
    expect(backend?.coveredSeq).toBe(backend?.headSeq)
  })
})
