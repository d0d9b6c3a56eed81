import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../store/sqlite-store.js'
import { CLI, initGateway } from '../helpers/gateway-process.js'

// Administration commands on a setup from `hsmgate init`, without a running gateway.

let dir: string
let port: number

const bulkEntry = {
  node: 'bulk-writer',
  principal: 'spiffe://hsmgate.demo/app/payments',
  certSerial: null,
  sourceAddress: '127.0.0.1',
  operation: 'random',
  key: null,
  keyVersion: null,
  outcome: 'ok' as const,
  status: 200,
  errorCode: null,
  policyIds: [],
  reason: null,
  requestDigest: '0'.repeat(64),
  latencyMs: 1,
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

function hsmgate(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, HSMGATE_LOG_LEVEL: 'warn' }
    execFile(
      process.execPath,
      [CLI, ...args],
      { env, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

beforeAll(async () => {
  ;({ dir, port } = await initGateway())
}, 120_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('keys classification', () => {
  it('create takes --classification and list shows it', async () => {
    const created = await hsmgate(
      'keys',
      'create',
      'payments-vault',
      '--type',
      'aes',
      '--owner',
      'payments',
      '--classification',
      'restricted',
      '--dir',
      dir,
    )
    expect(created.code, created.stderr).toBe(0)
    expect(JSON.parse(created.stdout)).toMatchObject({ classification: 'restricted' })
    const listed = JSON.parse((await hsmgate('keys', 'list', '--dir', dir)).stdout) as Array<
      Record<string, unknown>
    >
    expect(listed.find((k) => k.name === 'payments-vault')?.classification).toBe('restricted')
    expect(listed.find((k) => k.name === 'payments-data')?.classification).toBe('confidential')
  }, 60_000)

  it('classify changes every version and rotate keeps it', async () => {
    await hsmgate('keys', 'rotate', 'payments-data', '--dir', dir)
    const run = await hsmgate('keys', 'classify', 'payments-data', 'restricted', '--dir', dir)
    expect(run.code, run.stderr).toBe(0)
    const versions = JSON.parse(run.stdout) as Array<{ version: number; classification: string }>
    expect(versions.map((v) => v.classification)).toEqual(['restricted', 'restricted'])
    const rotated = JSON.parse(
      (await hsmgate('keys', 'rotate', 'payments-data', '--dir', dir)).stdout,
    )
    expect(rotated).toMatchObject({ version: 3, classification: 'restricted' })
  }, 60_000)

  it('rejects an unknown level and a missing key', async () => {
    const bad = await hsmgate('keys', 'classify', 'payments-data', 'secret', '--dir', dir)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("LEVEL 'secret' is not a classification")
    const option = await hsmgate(
      'keys',
      'create',
      'payments-x',
      '--type',
      'aes',
      '--classification',
      'top',
      '--dir',
      dir,
    )
    expect(option.code).toBe(2)
    const missing = await hsmgate('keys', 'classify', 'nosuch', 'internal', '--dir', dir)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("key 'nosuch' not found")
  }, 60_000)
})

describe('keys destroy', () => {
  it('refuses without --break-glass and keeps the key', async () => {
    const run = await hsmgate('keys', 'destroy', 'reporting-data', '--dir', dir)
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('bypasses the dual control')
    const noReason = await hsmgate(
      'keys',
      'destroy',
      'reporting-data',
      '--break-glass',
      '--dir',
      dir,
    )
    expect(noReason.code).toBe(2)
    expect(noReason.stderr).toContain('--break-glass needs --reason')
    const keys = JSON.parse((await hsmgate('keys', 'list', '--dir', dir)).stdout) as Array<
      Record<string, unknown>
    >
    expect(keys.find((k) => k.name === 'reporting-data')?.state).toBe('enabled')
  }, 60_000)

  it('with --break-glass destroys and audits the OS user and reason', async () => {
    const run = await hsmgate(
      'keys',
      'destroy',
      'reporting-data',
      '--break-glass',
      '--reason',
      'incident 7: key leaked',
      '--dir',
      dir,
    )
    expect(run.code, run.stderr).toBe(0)
    const result = JSON.parse(run.stdout) as {
      break_glass: { principal: string; decision_id: string }
    }
    expect(result.break_glass.principal).toMatch(/^os-user:.+\(uid=\d+\)$/)

    const store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
    try {
      const records = await store.auditRecords('node-1')
      const record = records.find((r) => r.decisionId === result.break_glass.decision_id)
      expect(record).toMatchObject({
        operation: 'destroy-key',
        key: 'reporting-data',
        principal: result.break_glass.principal,
        reason: 'break-glass: incident 7: key leaked',
      })
    } finally {
      await store.close()
    }
    const verify = await hsmgate('audit', 'verify', '--config', join(dir, 'hsmgate.yaml'))
    expect(verify.stdout, verify.stderr).not.toContain('FAIL')
  }, 60_000)
})

describe('apps and certs output', () => {
  it('apps list uses snake_case keys and ends with a newline', async () => {
    const run = await hsmgate('apps', 'list', '--dir', dir)
    expect(run.stdout.endsWith('\n')).toBe(true)
    const [app] = JSON.parse(run.stdout) as Array<Record<string, unknown>>
    expect(Object.keys(app ?? {}).sort()).toEqual(
      ['addresses', 'approval_hold', 'created_at', 'hosts', 'name', 'suspended', 'team'].sort(),
    )
  })

  it('certs list marks a superseded certificate', async () => {
    const store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
    try {
      const [current] = await store.certificatesOf('payments')
      const later = new Date(Date.parse(current!.issuedAt) + 1000).toISOString()
      await store.putCertificate({ ...current!, serial: 'abcdef01', issuedAt: later })
    } finally {
      await store.close()
    }
    const run = await hsmgate('certs', 'list', '--app', 'payments', '--dir', dir)
    const certs = JSON.parse(run.stdout) as Array<{ serial: string; status: string }>
    expect(certs.find((c) => c.serial === 'abcdef01')?.status).toBe('active')
    expect(certs.find((c) => c.serial !== 'abcdef01')?.status).toBe('superseded')
  })

  it('certs revoke and list name an unregistered application', async () => {
    for (const sub of ['revoke', 'list']) {
      const run = await hsmgate('certs', sub, '--app', 'nosuch', '--dir', dir)
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(
        "application 'nosuch' is not registered (registered: payments, reporting)",
      )
    }
  }, 60_000)
})

describe('streaming and hints', () => {
  it('audit export into a closed pipe exits quietly', async () => {
    // More records than a pipe buffers, so the export is still writing when head exits.
    const store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
    try {
      const entries = Array.from({ length: 3000 }, (_, i) => ({
        ...bulkEntry,
        decisionId: `d_bulk_${i}`,
        time: new Date().toISOString(),
      }))
      await store.appendAuditBatch(entries)
    } finally {
      await store.close()
    }
    const config = join(dir, 'hsmgate.yaml')
    const script = `"$0" "$1" audit export --config "$2" | head -2; echo "exit=\${PIPESTATUS[0]}" >&2`
    const run = await new Promise<Run>((resolve) => {
      execFile(
        'bash',
        ['-c', script, process.execPath, CLI, config],
        { timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : 1, stdout, stderr }),
      )
    })
    expect(run.stdout.trim().split('\n')).toHaveLength(2)
    expect(run.stderr).not.toContain('EPIPE')
    expect(run.stderr).toContain('exit=0')
  }, 60_000)

  it('policy explain lists the registered applications', async () => {
    const run = await hsmgate(
      'policy',
      'explain',
      '--principal',
      'frozen',
      '--action',
      'sign',
      '--dir',
      dir,
    )
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('(registered: payments, reporting)')
    expect(run.stderr).toContain('--file cases.yaml --case NAME')
  })

  it('up names every port option when a port is taken', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    try {
      const run = await hsmgate('up', '--dir', dir)
      expect(run.code).toBe(78)
      for (const option of [
        '--port PORT',
        '--enroll-port PORT',
        '--stats-port PORT',
        'listen.enroll_port',
      ]) {
        expect(run.stderr).toContain(option)
      }
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }, 60_000)

  it('a missing configuration names --config and init', async () => {
    const run = await hsmgate('doctor', '--config', join(dir, 'none', 'hsmgate.yaml'))
    expect(run.code).toBe(78)
    expect(run.stderr).toContain('(ENOENT)')
    expect(run.stderr).toContain("'hsmgate init --dir ./var'")
    expect(run.stderr).not.toContain(`init --dir ${join(dir, 'none')}`)
  })
})
