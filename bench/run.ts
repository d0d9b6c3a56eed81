import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { gatewayThroughput, type LoadRequest } from './gateway-load.js'
import { cpuPerOperation, descendantCpu } from './process-cpu.js'
import { RawBench, type BenchOperation } from './raw-softhsm.js'

/**
 * Benchmark (not a test): raw SoftHSM2 throughput with two worker threads against the same
 * operations through the whole gateway (Envoy, authz, backend) with concurrent keep-alive mTLS
 * clients. Run after `npm run build`: node dist/bench/run.js [--seconds S] [--clients N].
 * Prints one JSON document on stdout.
 */

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'dist', 'cli', 'main.js')
const MODULE = '/usr/lib/softhsm/libsofthsm2.so'
const MAX_SECONDS = 20

const LOADS: Record<BenchOperation, LoadRequest> = {
  'ecdsa-p256-sign': {
    path: '/v1/keys/payments-signing/sign',
    body: { digest: Buffer.alloc(32, 7).toString('base64') },
  },
  'rsa-2048-sign': {
    path: '/v1/keys/payments-rsa/sign',
    body: { digest: Buffer.alloc(32, 7).toString('base64') },
  },
  'aes-256-gcm-encrypt-1k': {
    path: '/v1/keys/payments-data/encrypt',
    body: { plaintext: Buffer.alloc(1024, 1).toString('base64') },
  },
}

function cli(args: string[]): string {
  const env = { ...process.env, HSMGATE_LOG_LEVEL: 'warn' }
  return execFileSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' })
}

/** Starts `hsmgate up` and resolves when it reports ready; rejects after 90 s. */
function startGateway(dir: string) {
  const up = spawn(process.execPath, [CLI, 'up', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' },
  })
  const ready = new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway not ready in 90 s')), 90_000)
    let out = ''
    up.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('ready:')) {
        clearTimeout(timer)
        resolveReady()
      }
    })
    up.once('exit', (code) => reject(new Error(`hsmgate up exited with ${code}`)))
  })
  return { up, ready }
}

function machine() {
  const softhsm = execFileSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).trim()
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    softhsm,
    uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    load_average: loadavg().map((l) => Math.round(l * 100) / 100),
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      clients: { type: 'string', default: '16' },
    },
  })
  const seconds = Math.min(MAX_SECONDS, Math.max(1, Number(values.seconds)))
  const clients = Math.min(256, Math.max(1, Number(values.clients)))
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-bench-'))
  const port = 18_443 + Math.floor(Math.random() * 1000)
  try {
    cli([
      'init',
      '--dir',
      dir,
      '--force',
      '--port',
      String(port),
      '--stats-port',
      String(port + 1000),
    ])
    cli([
      'keys',
      'create',
      'payments-rsa',
      '--type',
      'rsa-2048',
      '--owner',
      'payments',
      '--dir',
      dir,
    ])
    process.env.SOFTHSM2_CONF = join(dir, 'hsm', 'softhsm2.conf')
    const pin = readFileSync(join(dir, 'secrets', 'hsm-a.pin'), 'utf8').trim()
    const operations = Object.keys(LOADS) as BenchOperation[]
    const raw = []
    const bench = RawBench.start({ module: MODULE, label: 'hsmgate-a', pin }, 2)
    try {
      for (const operation of operations) raw.push(await bench.run(operation, seconds))
    } finally {
      await bench.stop()
    }
    const gateway = startGateway(dir)
    try {
      await gateway.ready
      const results = []
      for (const [i, operation] of operations.entries()) {
        const upPid = gateway.up.pid ?? 0
        const cpuBefore = descendantCpu(upPid)
        const selfBefore = process.cpuUsage()
        const through = await gatewayThroughput(dir, port, 'payments', LOADS[operation], {
          clients,
          seconds,
        })
        const self = process.cpuUsage(selfBefore)
        const cpu = cpuPerOperation(cpuBefore, descendantCpu(upPid), self, through.ops)
        const rawResult = raw[i]!
        const ratio = Math.round((through.ops_per_s / rawResult.ops_per_s) * 1000) / 1000
        results.push({
          operation,
          raw: rawResult,
          gateway: through,
          gateway_raw_ratio: ratio,
          gateway_cpu_ms_per_op: cpu,
        })
      }
      const report = {
        date: new Date().toISOString(),
        machine: machine(),
        seconds,
        clients,
        results,
      }
      process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    } finally {
      gateway.up.kill('SIGTERM')
      await new Promise((r) => gateway.up.once('exit', r))
    }
  } finally {
    if (process.env.HSMGATE_BENCH_KEEP === undefined) rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
