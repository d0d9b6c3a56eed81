import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, openSync, closeSync, readdirSync } from 'node:fs'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** Directory that Debian's postgresql packages install each major version under. */
const POSTGRES_LIB = '/usr/lib/postgresql'

/** The OS user that owns the data directory and runs the server when the test runs as root. */
const POSTGRES_USER = 'postgres'

const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 30_000

/**
 * How `stop` shuts the server down, as `pg_ctl -m` names the modes: 'fast' (SIGINT) rolls back
 * open transactions and checkpoints, 'immediate' (SIGQUIT) exits at once and recovers from the
 * WAL on the next start, like a crash.
 */
export type PostgresStopMode = 'fast' | 'immediate'

/** A private PostgreSQL server on a loopback port, for one test file. */
export interface PostgresInstance {
  readonly host: '127.0.0.1'
  readonly port: number
  /** Data directory; it survives `stop` and `start`, and `cleanup` removes it. */
  readonly dataDir: string
  /** Server log of every start, for failure messages. */
  readonly logFile: string
  /** Returns a connection URL for `database` (default `postgres`) as the `postgres` role. */
  url(database?: string): string
  /** Whether the server process is running. */
  readonly running: boolean
  /** Starts the server again on the same port and data directory; resolves once it accepts. */
  start(): Promise<void>
  /** Stops the server and resolves once its process has exited. */
  stop(mode?: PostgresStopMode): Promise<void>
  /** Stops the server if it runs and removes the data directory. */
  cleanup(): Promise<void>
}

/** Returns the bin directory of the newest PostgreSQL major version that has initdb. */
export function postgresBinDir(): string {
  const versions = existsSync(POSTGRES_LIB)
    ? readdirSync(POSTGRES_LIB)
        .filter((name) => /^\d+$/.test(name))
        .sort((a, b) => Number(b) - Number(a))
    : []
  for (const version of versions) {
    const bin = join(POSTGRES_LIB, version, 'bin')
    if (existsSync(join(bin, 'initdb'))) return bin
  }
  throw new Error(
    `no PostgreSQL server found under ${POSTGRES_LIB}/*/bin; install postgresql (deploy/install.sh)`,
  )
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Returns the uid and gid of the postgres OS user. */
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = await execFileAsync('id', ['-u', POSTGRES_USER])
  const gid = await execFileAsync('id', ['-g', POSTGRES_USER])
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/**
 * Returns the command line that runs `program` as the postgres OS user when this process is root,
 * because the PostgreSQL server refuses to run as root. setpriv execs the program, so the child's
 * pid is the program's own and signals reach it directly.
 */
function asPostgresUser(program: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [program, args]
  return [
    'setpriv',
    [`--reuid=${POSTGRES_USER}`, `--regid=${POSTGRES_USER}`, '--init-groups', program, ...args],
  ]
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.setTimeout(1000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
}

/** Waits until pg_isready reports that the server accepts connections. */
async function waitUntilReady(bin: string, port: number, child: ChildProcess, log: string) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited during start; log ${log}:\n${readFileSync(log, 'utf8')}`)
    }
    if (await canConnect(port)) {
      const ready = await execFileAsync(join(bin, 'pg_isready'), [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        POSTGRES_USER,
        '-d',
        'postgres',
        '-t',
        '1',
      ]).then(
        () => true,
        () => false,
      )
      if (ready) return
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`postgres did not accept connections on port ${port} within 30 s; log ${log}`)
}

function waitForExit(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill(signal)
  })
}

/** Writes a configuration that listens on 127.0.0.1 only and trusts only that address. */
function configure(dataDir: string, socketDir: string): void {
  writeFileSync(
    join(dataDir, 'pg_hba.conf'),
    '# TYPE  DATABASE  USER  ADDRESS       METHOD\nhost    all       all   127.0.0.1/32  trust\n',
  )
  const settings = [
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${socketDir}'`,
    // Test data is disposable, and skipping fsync keeps tests fast on a shared machine. A commit
    // still reaches the kernel before it returns, so an immediate stop loses no committed data.
    'fsync = off',
    'full_page_writes = off',
    'max_connections = 100',
    "log_min_messages = 'warning'",
  ]
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), `${settings.join('\n')}\n`)
}

/**
 * Creates a data directory with initdb in a new temporary directory and starts a PostgreSQL
 * server on a free 127.0.0.1 port with trust authentication for that address only. When the
 * test runs as root, the files belong to the postgres OS user and the server runs as that user.
 * The caller must call `cleanup`; a process exit also stops the server.
 */
export async function startPostgresInstance(): Promise<PostgresInstance> {
  const bin = postgresBinDir()
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-pg-'))
  const dataDir = join(dir, 'data')
  const logFile = join(dir, 'postgres.log')
  closeSync(openSync(logFile, 'a'))
  if (process.getuid?.() === 0) {
    const { uid, gid } = await postgresIds()
    chownSync(dir, uid, gid)
    chownSync(logFile, uid, gid)
  }

  const [initdb, initArgs] = asPostgresUser(join(bin, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    POSTGRES_USER,
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ])
  try {
    await execFileAsync(initdb, initArgs, { cwd: dir, timeout: 60_000 })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`initdb failed in ${dataDir}: ${(error as Error).message}`, { cause: error })
  }
  configure(dataDir, dir)

  const port = await freePort()
  let child: ChildProcess | undefined
  const killOnExit = (): void => {
    child?.kill('SIGQUIT')
  }
  process.once('exit', killOnExit)

  const running = (): boolean =>
    child !== undefined && child.exitCode === null && child.signalCode === null

  const start = async (): Promise<void> => {
    if (running()) throw new Error(`postgres already runs on port ${port}`)
    const log = openSync(logFile, 'a')
    const [program, args] = asPostgresUser(join(bin, 'postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
    ])
    child = spawn(program, args, { cwd: dir, stdio: ['ignore', log, log] })
    closeSync(log)
    await waitUntilReady(bin, port, child, logFile)
  }

  const stop = async (mode: PostgresStopMode = 'fast'): Promise<void> => {
    if (child === undefined) return
    await waitForExit(child, mode === 'fast' ? 'SIGINT' : 'SIGQUIT')
  }

  const instance: PostgresInstance = {
    host: '127.0.0.1',
    port,
    dataDir,
    logFile,
    url: (database = 'postgres') => `postgres://${POSTGRES_USER}@127.0.0.1:${port}/${database}`,
    get running() {
      return running()
    },
    start,
    stop,
    cleanup: async () => {
      await stop('fast')
      process.off('exit', killOnExit)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    await start()
  } catch (error) {
    await instance.cleanup()
    throw error
  }
  return instance
}
