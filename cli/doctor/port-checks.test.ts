import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../../config/load.js'
import { checkPorts } from './port-checks.js'
import { socketOwnedBy } from './socket-owner.js'

// The test process plays this gateway's Envoy: it holds the listener port, and a status file in
// the runtime directory names a pid. An unrelated `sleep` stands in for another gateway.

let server: Server
let port: number
let other: ChildProcess
const runtime = mkdtempSync(join(tmpdir(), 'hsmgate-ports-'))

beforeAll(async () => {
  server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as { port: number }).port
  other = spawn('sleep', ['60'], { stdio: 'ignore' })
})

afterAll(async () => {
  other.kill()
  await new Promise((resolve) => server.close(resolve))
  rmSync(runtime, { recursive: true, force: true })
})

function config(): LoadedConfig {
  return {
    runtime_dir: runtime,
    listen: { address: '127.0.0.1', port },
    envoy: {},
    metrics: {},
  } as unknown as LoadedConfig
}

function envoyStatus(pid: number | undefined): void {
  mkdirSync(join(runtime, 'status'), { recursive: true })
  const file = join(runtime, 'status', 'envoy.json')
  if (pid === undefined) return rmSync(file, { force: true })
  const now = new Date().toISOString()
  const snapshot = {
    process: 'envoy',
    pid,
    started_at: now,
    updated_at: now,
    events: [],
    details: {},
  }
  writeFileSync(file, JSON.stringify(snapshot))
}

describe('socket owner', () => {
  it('finds the listening socket of this process', () => {
    expect(socketOwnedBy(port, process.pid)).toBe('yes')
  })

  it('denies it for another process', () => {
    expect(socketOwnedBy(port, other.pid!)).toBe('no')
  })
})

describe('doctor port check', () => {
  it('counts a port as this gateway when its Envoy holds it', async () => {
    envoyStatus(process.pid)
    const [result] = await checkPorts(config())
    expect(result?.status).toBe('ok')
    expect(result?.detail).toContain('in use by this gateway')
  })

  it('fails when the Envoy of the status file does not hold the port', async () => {
    envoyStatus(other.pid)
    const [result] = await checkPorts(config())
    expect(result?.status).toBe('fail')
    expect(result?.detail).toContain('another program')
  })

  it('fails when this gateway has no running Envoy', async () => {
    envoyStatus(undefined)
    const [result] = await checkPorts(config())
    expect(result?.status).toBe('fail')
  })
})
