// Measures authz decision and Check RPC latency: node dist/bench/authz-bench.js [options]
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import { pino } from 'pino'
import { createCheckHandler, type CheckRequest } from '../authz/check.js'
import { storeAuditor } from '../authz/decision-audit.js'
import { loadAuthzProtos } from '../authz/protos.js'
import { loadPolicyEngine } from '../authz/policy-watch.js'
import { startAuthzServer } from '../authz/server.js'
import { benchSetup, percentiles, signRequest, type BenchSetup } from './authz-fixture.js'

const { values } = parseArgs({
  options: {
    'store-parent': { type: 'string', default: tmpdir() },
    decisions: { type: 'string', default: '20000' },
    rpcs: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '200' },
    rate: { type: 'string', default: '1000' },
  },
})
const DECISIONS = Number(values.decisions)
const RPCS = Number(values.rpcs)
const CONCURRENCY = Number(values.concurrency)
const RATE = Number(values.rate)
/** Every phase stops after this long, whatever its count. */
const PHASE_LIMIT_MS = 60_000
const logger = pino({ level: 'silent' })

async function timed(count: number, run: () => unknown): Promise<number[]> {
  const samples: number[] = []
  const deadline = performance.now() + PHASE_LIMIT_MS
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    const start = performance.now()
    await run()
    samples.push(performance.now() - start)
  }
  return samples
}

async function inProcess(setup: BenchSetup) {
  const engine = loadPolicyEngine(setup.policyDir)
  const request = signRequest(setup.certificate) as CheckRequest
  const check = createCheckHandler({
    policies: () => engine,
    directory: setup.store,
    audit: storeAuditor(setup.store, 'bench'),
    decisionSecret: Buffer.alloc(32, 1),
    trustDomain: 'hsmgate.demo',
    logger,
  })
  const key = (await setup.store.keyVersions('payments-signing'))[0]!
  const app = (await setup.store.application('payments'))!
  const facts = {
    sourceAddress: '127.0.0.1',
    sourceMatchesHost: true,
    certificate: {
      issuer: 'CN=x',
      serial: '01',
      lifetimeSeconds: 3600,
      ageSeconds: 1,
      keyProtection: 'software' as const,
    },
    time: { hour: 12, minute: 0, weekday: 'Monday' },
    encryptionContext: null,
    requestBytes: 30,
    approvalGranted: false,
  }
  const decide = () =>
    engine.decide({
      principal: { kind: 'application', application: app },
      action: 'sign',
      key,
      context: facts,
    })
  await timed(2000, decide)
  const decision = percentiles(await timed(DECISIONS, decide))
  await timed(500, () => check(request))
  const handler = percentiles(await timed(DECISIONS, () => check(request)))
  return { cedar_decision_ms: decision, check_handler_ms: handler }
}

type Call = (request: object, done: (error: Error | null) => void) => void

async function overGrpc(setup: BenchSetup) {
  const socketPath = join(setup.dir, 'authz.sock')
  const server = await startAuthzServer({
    socketPath,
    policyDir: setup.policyDir,
    store: setup.store,
    nodeId: 'bench',
    decisionSecret: Buffer.alloc(32, 1),
    trustDomain: 'hsmgate.demo',
    logger,
  })
  const { authorization } = loadAuthzProtos()
  const client = new authorization(`unix:${socketPath}`, grpc.credentials.createInsecure())
  type Raw = (request: object, done: (e: Error | null) => void) => void
  const method = (client as unknown as Record<string, Raw>)['Check'] as Raw
  const call: Call = (request, done) => method.call(client, request, (e) => done(e))
  const request = signRequest(setup.certificate)
  try {
    await closedLoop(call, request, 500)
    const closed = await closedLoop(call, request, RPCS)
    const open = await openLoop(call, request)
    return { closed_loop: closed, open_loop: open }
  } finally {
    client.close()
    await server.close()
  }
}

/** Keeps CONCURRENCY calls in flight until `total` calls have finished. */
function closedLoop(call: Call, request: object, total: number) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const samples: number[] = []
    let started = 0
    const begin = performance.now()
    const launch = (): void => {
      if (started >= total || performance.now() - begin > PHASE_LIMIT_MS) return
      started += 1
      const t = performance.now()
      call(request, (error) => {
        if (error) return reject(error)
        samples.push(performance.now() - t)
        if (
          samples.length === started &&
          (started >= total || performance.now() - begin > PHASE_LIMIT_MS)
        ) {
          const seconds = (performance.now() - begin) / 1000
          resolve({
            in_flight: CONCURRENCY,
            calls: samples.length,
            per_second: Math.round(samples.length / seconds),
            latency_ms: percentiles(samples),
          })
        }
        launch()
      })
    }
    for (let i = 0; i < CONCURRENCY; i++) launch()
  })
}

/** Starts calls at RATE per second for 5 seconds, at most CONCURRENCY in flight. */
function openLoop(call: Call, request: object) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const samples: number[] = []
    const total = RATE * 5
    let started = 0
    let inFlight = 0
    let skipped = 0
    const begin = performance.now()
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - begin) / 1000) * RATE))
      while (started < due) {
        started += 1
        if (inFlight >= CONCURRENCY) {
          skipped += 1
          continue
        }
        inFlight += 1
        const t = performance.now()
        call(request, (error) => {
          inFlight -= 1
          if (error) return reject(error)
          samples.push(performance.now() - t)
        })
      }
      if (started >= total && inFlight === 0) {
        clearInterval(timer)
        resolve({
          rate_per_second: RATE,
          max_in_flight: CONCURRENCY,
          calls: samples.length,
          skipped,
          latency_ms: percentiles(samples),
        })
      }
    }, 1)
  })
}

const setup = await benchSetup(values['store-parent'])
try {
  const result = {
    node: process.version,
    store: join(setup.dir, 'store'),
    ...(await inProcess(setup)),
    check_rpc: await overGrpc(setup),
  }
  console.log(JSON.stringify(result, null, 2))
} finally {
  await setup.store.close()
  rmSync(setup.dir, { recursive: true, force: true })
}
