import { execFile } from 'node:child_process'
import { chmodSync, statSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STATS_MAX_CONNECTIONS } from '../../envoy/stats-listener.js'
import {
  CLI,
  curl,
  execFileAsync,
  initGateway,
  postJson,
  startUp,
  type TestGateway,
} from '../helpers/gateway-process.js'

// A local user without privileges on the gateway host tries to change Envoy's state through
// its admin interface: drain the listeners, stop Envoy, mark it failing, raise the log level,
// and read the certificates. The admin interface listens only on a Unix socket in the runtime
// directory, and the stats listener on 127.0.0.1 passes on only GET /stats/prometheus and
// GET /ready. `runuser -u nobody` runs curl as that user.

let gateway: TestGateway
let statsPort: number
let adminSocket: string
let envoyPid: number

/** What curl run as `nobody` got: its exit code, and the HTTP status when it connected. */
interface OutsiderResult {
  exitCode: number
  status: string
  body: string
}

function curlAsNobody(args: string[]): Promise<OutsiderResult> {
  const command = ['-u', 'nobody', '--', 'curl', '-sS', '--max-time', '5', '-w', '\n%{http_code}']
  return new Promise((resolve) => {
    execFile('runuser', [...command, ...args], (error, stdout) => {
      const cut = stdout.lastIndexOf('\n')
      let exitCode = 0
      if (error !== null) exitCode = typeof error.code === 'number' ? error.code : -1
      resolve({ exitCode, status: stdout.slice(cut + 1), body: stdout.slice(0, cut) })
    })
  })
}

/** Runs curl as root against the admin socket, as an operator would. */
function adminAsRoot(method: string, path: string) {
  return curl(`http://envoy${path}`, ['--unix-socket', adminSocket, '-X', method])
}

/** Admin requests that change Envoy's state or show its certificates or configuration. */
const ATTACKS: Array<[string, string]> = [
  ['POST', '/drain_listeners'],
  ['POST', '/drain_listeners?inboundonly'],
  ['POST', '/quitquitquit'],
  ['POST', '/healthcheck/fail'],
  ['POST', '/logging?level=debug'],
  ['POST', '/runtime_modify?hsmgate.reply_413=0'],
  ['POST', '/reset_counters'],
  ['GET', '/certs'],
  ['GET', '/config_dump'],
  // Method and path variants that must not reach the admin interface either.
  ['POST', '/ready'],
  ['PUT', '/stats/prometheus'],
  ['GET', '/ready/../certs'],
  ['GET', '/stats/prometheus/../../quitquitquit'],
  ['GET', '//certs'],
  ['GET', '/ready%2F..%2Fcerts'],
]

beforeAll(async () => {
  const setup = await initGateway()
  statsPort = setup.statsPort
  adminSocket = join(setup.dir, 'run', 'envoy-admin.sock')
  gateway = await startUp(setup.dir, setup.port)
  const status = await execFileAsync(process.execPath, [
    ...[CLI, 'status', '--json', '--config', join(setup.dir, 'hsmgate.yaml')],
  ])
  const report = JSON.parse(status.stdout) as { processes: Array<{ name: string; pid?: number }> }
  envoyPid = report.processes.find((p) => p.name === 'envoy')?.pid ?? 0
}, 150_000)

afterAll(async () => {
  await gateway?.stop()
  gateway?.cleanup()
}, 60_000)

describe('envoy admin interface', () => {
  it('listens on a socket of mode 0600', () => {
    const stats = statSync(adminSocket)
    expect(stats.isSocket()).toBe(true)
    expect(stats.mode & 0o777).toBe(0o600)
    expect(stats.uid).toBe(process.getuid?.())
  })

  it('rejects state changes by an unprivileged user on the stats port', async () => {
    for (const [method, path] of ATTACKS) {
      const url = `http://127.0.0.1:${statsPort}${path}`
      const result = await curlAsNobody(['--path-as-is', '-X', method, url])
      expect(result.exitCode, `${method} ${path}`).toBe(0)
      expect(['400', '404', '405'], `${method} ${path}: ${result.status}`).toContain(result.status)
    }
  }, 60_000)

  it('rejects an unprivileged user on the admin socket', async () => {
    const result = await curlAsNobody([
      ...['--unix-socket', adminSocket, '-X', 'POST'],
      'http://envoy/logging?level=debug',
    ])
    // curl exit code 7: connect() failed because the socket's mode denies this user.
    expect(result.exitCode).toBe(7)
    expect(result.status).toBe('000')
  })

  it('rejects the admin socket even in a traversable directory', async () => {
    // The socket's own mode must hold where the runtime directory is shared with a group, as in
    // the separated-users layout, so this opens the directories for traversal.
    const runDir = join(gateway.dir, 'run')
    const modes = [gateway.dir, runDir].map((path) => [path, statSync(path).mode & 0o7777] as const)
    try {
      for (const [path] of modes) chmodSync(path, 0o711)
      for (const [method, path] of ATTACKS.slice(0, 9)) {
        const result = await curlAsNobody([
          ...['--unix-socket', adminSocket, '-X', method],
          `http://envoy${path}`,
        ])
        expect(result.exitCode, `${method} ${path}`).toBe(7)
      }
    } finally {
      for (const [path, mode] of modes) chmodSync(path, mode)
    }
  }, 60_000)

  it('leaves Envoy serving after the attempts', async () => {
    const signed = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
    expect(signed.status, signed.body).toBe(200)

    const ready = await curl(`http://127.0.0.1:${statsPort}/ready`, [])
    expect(ready.body.trim()).toBe('LIVE')
    const { stdout } = await execFileAsync('ps', ['-o', 'pid=', '-p', String(envoyPid)])
    expect(Number(stdout.trim())).toBe(envoyPid)

    const metrics = await curl(`http://127.0.0.1:${statsPort}/stats/prometheus`, [])
    expect(metrics.body).toMatch(/^envoy_listener_manager_total_listeners_draining\{\} 0$/m)
    expect(metrics.body).toMatch(/^envoy_server_state\{\} 0$/m)

    // Listing the log levels as root changes nothing; none may have become debug.
    const levels = await adminAsRoot('POST', '/logging')
    expect(levels.status).toBe(200)
    expect(levels.body).toMatch(/admin: warning/)
    expect(levels.body).not.toMatch(/: debug/)
  })

  it('serves metrics and readiness to an unprivileged user', async () => {
    const ready = await curlAsNobody([`http://127.0.0.1:${statsPort}/ready`])
    expect(ready.status).toBe('200')
    expect(ready.body.trim()).toBe('LIVE')

    const metrics = await curlAsNobody([`http://127.0.0.1:${statsPort}/stats/prometheus`])
    expect(metrics.status).toBe('200')
    expect(metrics.body).toContain('envoy_http_downstream_rq_total')
    // No certificate serial appears in the metrics.
    expect(metrics.body).not.toMatch(/serial/i)
  })

  it('serves the whole admin interface to root', async () => {
    const certs = await adminAsRoot('GET', '/certs')
    expect(certs.status).toBe(200)
    expect(certs.body).toContain('serial_number')
  })

  it('reports envoy up in hsmgate status', async () => {
    const { stdout } = await execFileAsync(process.execPath, [
      ...[CLI, 'status', '--json', '--config', join(gateway.dir, 'hsmgate.yaml')],
    ])
    const report = JSON.parse(stdout) as {
      processes: Array<{ name: string; up: boolean; note?: string }>
    }
    const envoy = report.processes.find((p) => p.name === 'envoy')
    expect(envoy?.up).toBe(true)
    expect(envoy?.note).toBeUndefined()
  })

  it('limits open connections on the stats port', async () => {
    const sockets: Socket[] = []
    try {
      for (let i = 0; i < STATS_MAX_CONNECTIONS; i++) {
        const socket = connect(statsPort, '127.0.0.1')
        socket.on('error', () => undefined)
        await new Promise((resolve) => socket.once('connect', resolve))
        sockets.push(socket)
      }
      const over = await curl(`http://127.0.0.1:${statsPort}/ready`, []).catch(
        (error: Error) => error,
      )
      expect(over).toBeInstanceOf(Error)

      // Application requests are not affected by the full stats listener.
      const request = await postJson(gateway, 'payments', '/v1/random', { length: 8 })
      expect(request.status).toBe(200)
    } finally {
      for (const socket of sockets) socket.destroy()
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
    const ready = await curl(`http://127.0.0.1:${statsPort}/ready`, [])
    expect(ready.status).toBe(200)
  }, 60_000)
})
