import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { secretsInLogs } from './log-scan.js'

export const execFileAsync = promisify(execFile)

/** The project root; tests run the compiled CLI from dist/ the way users do. */
export const ROOT = resolve(import.meta.dirname, '..', '..')
export const CLI = join(ROOT, 'dist', 'cli', 'main.js')

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolvePort(port))
    })
  })
}

/**
 * Returns `count` distinct free ports. The kernel may hand out a port again as soon as it is
 * closed, so each new port is checked against the ones already chosen.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = []
  for (let attempt = 0; ports.length < count && attempt < count * 20; attempt++) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} distinct free ports`)
  return ports
}

/** A gateway made by `hsmgate init` in a temporary directory and run by `hsmgate up`. */
export interface TestGateway {
  dir: string
  port: number
  url: string
  up: ChildProcess
  stdout: () => string
  stop(): Promise<number | null>
  cleanup(): void
}

/** Runs `hsmgate init` in a new temporary directory with free ports. */
export async function initGateway(): Promise<{
  dir: string
  port: number
  /** Port of Envoy's stats listener: GET /stats/prometheus and GET /ready only. */
  statsPort: number
  enrollPort: number
}> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-test-'))
  const [port, statsPort, enrollPort] = (await freePorts(3)) as [number, number, number]
  const args = [CLI, 'init', '--dir', dir, '--force', '--port', String(port)]
  args.push('--enroll-port', String(enrollPort))
  await execFileAsync(process.execPath, [...args, '--stats-port', String(statsPort)], {
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  })
  return { dir, port, statsPort, enrollPort }
}

/** Starts `hsmgate up --dir DIR` and resolves once it prints that it is ready. */
export async function startUp(dir: string, port: number, timeoutMs = 90_000): Promise<TestGateway> {
  const up = spawn(process.execPath, [CLI, 'up', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  })
  let out = ''
  let err = ''
  up.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  up.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()))

  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`not ready in ${timeoutMs} ms:\n${err}`)),
      timeoutMs,
    )
    const check = (): void => {
      if (out.includes('ready:')) {
        clearTimeout(timer)
        resolveReady()
      }
    }
    up.stdout?.on('data', check)
    up.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`hsmgate up exited with ${code} before ready:\n${err}`))
    })
  })

  const exited = new Promise<number | null>((resolveExit) => up.once('exit', resolveExit))
  return {
    dir,
    port,
    url: `https://127.0.0.1:${port}`,
    up,
    stdout: () => out,
    stop: async () => {
      if (up.exitCode === null) up.kill('SIGTERM')
      return exited
    },
    cleanup: () => {
      // Every gateway a test starts has its logs checked for the setup's secrets before the
      // directory goes, so that the whole test run is scanned and not only one session.
      const leaks = secretsInLogs(dir, out + err)
      rmSync(dir, { recursive: true, force: true })
      if (leaks.length > 0) throw new Error(`secrets found in gateway logs: ${leaks.join(', ')}`)
    },
  }
}

/** Arguments that make curl present the demo application's client certificate. */
export function appTls(dir: string, app: string): string[] {
  const base = join(dir, 'apps', app)
  return [
    '--cacert',
    `${base}/ca.crt`,
    '--cert',
    `${base}/client.crt`,
    '--key',
    `${base}/client.key`,
  ]
}

export interface CurlResult {
  status: number
  body: string
  json: () => Record<string, unknown>
}

/**
 * Runs curl and returns the HTTP status and body. `extra` goes before the URL; a TLS failure
 * rejects with curl's exit code in the error.
 */
export async function curl(url: string, extra: string[]): Promise<CurlResult> {
  const { stdout } = await execFileAsync('curl', ['-sS', '-w', '\n%{http_code}', ...extra, url], {
    maxBuffer: 16 * 1024 * 1024,
  })
  const cut = stdout.lastIndexOf('\n')
  const body = stdout.slice(0, cut)
  return {
    status: Number(stdout.slice(cut + 1)),
    body,
    json: () => JSON.parse(body) as Record<string, unknown>,
  }
}

/** POSTs a JSON body with curl as `app`. */
export function postJson(gateway: TestGateway, app: string, path: string, body: unknown) {
  return curl(`${gateway.url}${path}`, [
    ...appTls(gateway.dir, app),
    '-H',
    'content-type: application/json',
    '--data-binary',
    typeof body === 'string' ? body : JSON.stringify(body),
  ])
}

/** Returns true when a process with this pid exists. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
