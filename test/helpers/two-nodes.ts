import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { PostgresStore } from '../../store/postgres/postgres-store.js'
import { SqliteStore } from '../../store/sqlite-store.js'
import { CLI, freePorts, initGateway } from './gateway-process.js'
import { secretsInLogs } from './log-scan.js'

/** Settings of store.postgres that both nodes get, as hsmgate.yaml spells them. */
export interface NodeStoreSettings {
  url: string
  schema: string
  pool_size?: number
  connect_timeout?: string
  acquire_timeout?: string
  query_timeout?: string
}

/** One gateway node: its setup directory, ports and, while it runs, its `hsmgate up`. */
export interface GatewayNode {
  readonly id: string
  readonly dir: string
  readonly port: number
  readonly url: string
  /** The `hsmgate up` process; it leads a process group with authz, backend and Envoy. */
  up?: ChildProcess
  /** Output of `hsmgate up` so far, for failure messages. */
  log: string
}

/** Two gateway nodes on one PostgreSQL schema, made from one `hsmgate init` setup. */
export interface TwoNodes {
  readonly a: GatewayNode
  readonly b: GatewayNode
  /** Starts `hsmgate up` for a node and resolves once it reports ready. */
  start(node: GatewayNode): Promise<void>
  /** Sends SIGKILL to the node's whole process group: up, authz, backend and Envoy. */
  kill(node: GatewayNode): Promise<void>
  /** Stops the nodes that still run (SIGTERM, then SIGKILL) and removes both directories. */
  cleanup(): Promise<void>
}

export interface TwoNodeOptions {
  readonly store: NodeStoreSettings
  /** Extra fields of the authz section, such as quotas, for both nodes. */
  readonly authz?: Record<string, unknown>
  /** The audit section of both nodes. */
  readonly audit?: Record<string, unknown>
}

const READY_TIMEOUT_MS = 90_000
const STOP_TIMEOUT_MS = 15_000

/**
 * Copies the applications, keys and certificates that `hsmgate init` wrote to its SQLite store
 * into the PostgreSQL schema, which the nodes then share.
 */
async function copyStore(sqliteFile: string, store: NodeStoreSettings): Promise<void> {
  const from = new SqliteStore(sqliteFile)
  const to = await PostgresStore.open({
    url: store.url,
    schema: store.schema,
    poolSize: 2,
    connectTimeoutMs: 5000,
    acquireTimeoutMs: 5000,
  })
  try {
    for (const app of await from.listApplications()) {
      await to.putApplication(app)
      for (const certificate of await from.certificatesOf(app.name)) {
        await to.putCertificate(certificate)
      }
    }
    for (const key of await from.listKeys()) {
      for (const version of await from.keyVersions(key.name)) await to.putKeyVersion(version)
    }
  } finally {
    await from.close()
    await to.close()
  }
}

/** Rewrites a node's hsmgate.yaml for its id, ports and the shared store. */
function configureNode(
  dir: string,
  id: string,
  ports: { listen: number; stats: number; enroll: number },
  options: TwoNodeOptions,
): void {
  const file = join(dir, 'hsmgate.yaml')
  const config = parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>
  config.node_id = id as never
  config.listen = { ...config.listen, port: ports.listen, enroll_port: ports.enroll }
  config.envoy = { ...config.envoy, stats_port: ports.stats }
  config.store = { postgres: { ...options.store } }
  config.authz = { ...config.authz, ...options.authz }
  if (options.audit !== undefined) config.audit = { ...options.audit }
  writeFileSync(file, stringify(config))
}

/**
 * Makes a second node directory from the first: the same HSM tokens (its softhsm2.conf names
 * the first node's token directory by absolute path), PINs, decision secret, PKI, policies and
 * demo client certificates, and its own runtime directory, logs and trusted audit key file.
 */
function cloneNodeDir(dirA: string): string {
  const dirB = mkdtempSync(join(tmpdir(), 'hsmgate-node-b-'))
  for (const part of ['hsm/softhsm2.conf', 'secrets', 'pki', 'policies', 'apps', 'hsmgate.yaml']) {
    cpSync(join(dirA, part), join(dirB, part), { recursive: true, preserveTimestamps: true })
  }
  mkdirSync(join(dirB, 'run'), { recursive: true, mode: 0o700 })
  return dirB
}

function nodeOf(id: string, dir: string, port: number): GatewayNode {
  return { id, dir, port, url: `https://127.0.0.1:${port}`, log: '' }
}

/** Starts `hsmgate up` in its own process group, so that one signal reaches all its children. */
async function startNode(node: GatewayNode): Promise<void> {
  const up = spawn(process.execPath, [CLI, 'up', '--dir', node.dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  })
  node.up = up
  let out = ''
  const collect = (chunk: Buffer): void => {
    out += chunk.toString()
    node.log += chunk.toString()
  }
  up.stdout?.on('data', collect)
  up.stderr?.on('data', collect)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${node.id} not ready in ${READY_TIMEOUT_MS} ms:\n${out}`))
    }, READY_TIMEOUT_MS)
    up.stdout?.on('data', () => {
      if (!out.includes('ready:')) return
      clearTimeout(timer)
      resolve()
    })
    up.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${node.id}: hsmgate up exited with ${code} before ready:\n${out}`))
    })
  })
}

/** Signals the node's process group and waits for `hsmgate up` to exit. */
async function signalNode(node: GatewayNode, signal: NodeJS.Signals): Promise<void> {
  const up = node.up
  if (up?.pid === undefined) return
  if (up.exitCode !== null || up.signalCode !== null) {
    killGroup(up.pid, 'SIGKILL')
    return
  }
  const exited = new Promise<void>((resolve) => up.once('exit', () => resolve()))
  killGroup(up.pid, signal)
  const timer = setTimeout(() => killGroup(up.pid!, 'SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // The group has exited already.
  }
}

/**
 * Creates two gateway nodes, node-a and node-b, from one `hsmgate init` setup, on free loopback
 * ports and one PostgreSQL schema. Both nodes use the same two SoftHSM2 tokens: SoftHSM2 keeps
 * each object in a file, locks it while writing and reads it again when it changed, so two
 * processes may use one token. Nothing is started; call `start` for each node, one after the
 * other, because each backend creates its node's audit key at its first start.
 */
export async function createTwoNodes(options: TwoNodeOptions): Promise<TwoNodes> {
  const init = await initGateway()
  const a = nodeOf('node-a', init.dir, init.port)
  let b: GatewayNode | undefined
  try {
    await copyStore(join(a.dir, 'store', 'hsmgate.db'), options.store)
    const [listen, stats, enroll] = (await freePorts(3)) as [number, number, number]
    b = nodeOf('node-b', cloneNodeDir(a.dir), listen)
    configureNode(
      a.dir,
      a.id,
      { listen: a.port, stats: init.statsPort, enroll: init.enrollPort },
      options,
    )
    configureNode(b.dir, b.id, { listen, stats, enroll }, options)
  } catch (error) {
    rmSync(a.dir, { recursive: true, force: true })
    if (b !== undefined) rmSync(b.dir, { recursive: true, force: true })
    throw error
  }
  const nodeB = b
  return {
    a,
    b: nodeB,
    start: startNode,
    kill: (node) => signalNode(node, 'SIGKILL'),
    cleanup: async () => {
      await signalNode(a, 'SIGTERM')
      await signalNode(nodeB, 'SIGTERM')
      const leaks = [...secretsInLogs(a.dir, a.log), ...secretsInLogs(nodeB.dir, nodeB.log)]
      rmSync(a.dir, { recursive: true, force: true })
      rmSync(nodeB.dir, { recursive: true, force: true })
      if (leaks.length > 0) throw new Error(`secrets found in node logs: ${leaks.join(', ')}`)
    },
  }
}
