import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../config/load.js'
import { freePort } from '../test/helpers/gateway-process.js'
import { envoyAdminGet, type AdminResult } from './admin-client.js'

// Which transport envoyAdminGet picks. Two plain HTTP servers stand in for Envoy's stats
// listener and admin socket and echo their own name; test/integration/envoy-admin-access.test.ts
// covers the real Envoy.

const dir = mkdtempSync(join(tmpdir(), 'hsmgate-admin-client-'))
let statsPort: number
const servers: Server[] = []

function echoServer(name: string): Server {
  const server = createServer((req, res) => res.end(`${name} ${req.method} ${req.url}`))
  servers.push(server)
  return server
}

/** Asserts that the request reached a server and returns the body it sent. */
function bodyOf(result: AdminResult): string {
  expect(result.reached, result.reached ? '' : result.reason).toBe(true)
  return result.reached ? result.body : ''
}

function config(stats: number | undefined): LoadedConfig {
  return { runtime_dir: dir, envoy: { stats_port: stats } } as unknown as LoadedConfig
}

beforeAll(async () => {
  statsPort = await freePort()
  const socket = join(dir, 'envoy-admin.sock')
  await new Promise<void>((resolve) => echoServer('socket').listen(socket, resolve))
  await new Promise<void>((resolve) => echoServer('stats').listen(statsPort, '127.0.0.1', resolve))
})

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  rmSync(dir, { recursive: true, force: true })
})

describe('envoy admin client', () => {
  it('reads /ready through the stats port', async () => {
    const result = await envoyAdminGet(config(statsPort), '/ready')
    expect(bodyOf(result)).toBe('stats GET /ready')
  })

  it('keeps the query on /stats/prometheus', async () => {
    const result = await envoyAdminGet(config(statsPort), '/stats/prometheus?filter=listener')
    expect(bodyOf(result)).toBe('stats GET /stats/prometheus?filter=listener')
  })

  it('sends other paths to the admin socket', async () => {
    const result = await envoyAdminGet(config(statsPort), '/certs')
    expect(bodyOf(result)).toBe('socket GET /certs')
  })

  it('uses the admin socket without a stats port', async () => {
    const result = await envoyAdminGet(config(undefined), '/ready')
    expect(bodyOf(result)).toBe('socket GET /ready')
  })

  it('reports a refused connection with its code', async () => {
    const closed = await freePort()
    const result = await envoyAdminGet(config(closed), '/ready')
    expect(result.reached).toBe(false)
    expect(result.reached ? 'reached' : result.reason).toBe('ECONNREFUSED')
    expect(result.via).toBe(`stats listener 127.0.0.1:${closed}`)
  })
})
