import { randomBytes, randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { join } from 'node:path'
import { bodyDigest, signDecision } from '../../authz/decision-header.js'
import { HsmCluster } from '../../crypto-backend/hsm/index.js'
import { KeyLifecycle } from '../../crypto-backend/keys/key-lifecycle.js'
import { KeyRegistry } from '../../crypto-backend/keys/key-registry.js'
import { startBackendServer, type BackendServer } from '../../crypto-backend/server.js'
import { AuditBatcher, SqliteStore } from '../../store/index.js'
import { createLogger } from '../../log/logger.js'
import { captureLogger, createSofthsmEnv, type SofthsmTestEnv } from './softhsm-env.js'

/**
 * The crypto backend in this process on a Unix socket, over two fresh SoftHSM2 tokens with a
 * trusted cluster KEK. Requests carry a decision header signed with the harness's secret, as
 * authz would sign it, so the backend's own checks run unchanged.
 */
export interface BackendHarness {
  env: SofthsmTestEnv
  cluster: HsmCluster
  store: SqliteStore
  call(path: string, body?: unknown, method?: string): Promise<HarnessResponse>
  close(): Promise<void>
}

export interface HarnessResponse {
  status: number
  json: Record<string, unknown>
}

export const HARNESS_PRINCIPAL = 'spiffe://hsmgate.demo/app/payments'

export async function startBackendHarness(options: { recheckIntervalMs?: number } = {}) {
  const env = await createSofthsmEnv(['backend-a', 'backend-b'])
  // HSMGATE_TEST_LOG=debug shows the backend's log on stdout while a test runs.
  const level = process.env.HSMGATE_TEST_LOG
  const logger = level === undefined ? captureLogger().logger : createLogger('backend', 'debug')
  const cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
    logger,
    recheckIntervalMs: options.recheckIntervalMs ?? 60_000,
  })
  const soPins = Object.fromEntries(
    env.tokens.map((t, i) => [i === 0 ? 'hsm-a' : 'hsm-b', t.soPin]),
  )
  await cluster.provisionClusterKek({ soPins })
  const store = new SqliteStore(join(env.dir, 'store.db'))
  const secret = randomBytes(32)
  const socket = join(env.dir, 'backend.sock')
  const deps = {
    nodeId: 'test-node',
    cluster,
    store,
    audit: new AuditBatcher(store),
    keys: new KeyRegistry(store),
    lifecycle: new KeyLifecycle(store, cluster),
    decisionSecret: secret,
    decisionMaxAgeMs: 30_000,
    maxBodyBytes: 65_536,
    logger,
  }
  const server: BackendServer = await startBackendServer(deps, socket, logger)

  const call = (path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST') => {
    const payload = Buffer.from(body === undefined ? '' : JSON.stringify(body))
    const header = signDecision(secret, {
      decisionId: randomUUID(),
      principal: HARNESS_PRINCIPAL,
      method,
      path,
      bodyDigest: bodyDigest(payload),
      issuedAtMs: Date.now(),
    })
    return send(socket, method, path, payload, header)
  }
  const close = async () => {
    await server.close()
    await cluster.close()
    await store.close()
    env.cleanup()
  }
  return { env, cluster, store, call, close } satisfies BackendHarness
}

function send(socket: string, method: string, path: string, payload: Buffer, decision: string) {
  return new Promise<HarnessResponse>((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: {
          'content-type': 'application/json',
          'content-length': payload.length,
          'x-hsmgate-principal': HARNESS_PRINCIPAL,
          'x-hsmgate-decision': decision,
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(text) as Record<string, unknown>,
          })
        })
      },
    )
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.end(payload)
  })
}
