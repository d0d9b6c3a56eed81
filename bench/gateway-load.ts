import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { summarize, type PhaseResult } from './stats.js'

/** One request that a load client repeats: path and JSON body. */
export interface LoadRequest {
  path: string
  body: unknown
}

/** Sends one POST on the keep-alive agent and resolves with the status code. */
function post(agent: Agent, port: number, load: LoadRequest, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: load.path,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 30_000,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.end(payload)
  })
}

/**
 * Runs `clients` concurrent clients, each with its own keep-alive mTLS connection as the demo
 * application `app`, sending `load` back to back for `seconds`.
 */
export async function gatewayThroughput(
  dir: string,
  port: number,
  app: string,
  load: LoadRequest,
  options: { clients: number; seconds: number },
): Promise<PhaseResult> {
  const base = join(dir, 'apps', app)
  const tls = {
    ca: readFileSync(join(base, 'ca.crt')),
    cert: readFileSync(join(base, 'client.crt')),
    key: readFileSync(join(base, 'client.key')),
  }
  const payload = Buffer.from(JSON.stringify(load.body))
  const latencies: number[] = []
  let errors = 0
  const begin = performance.now()
  const deadline = begin + options.seconds * 1000
  const client = async () => {
    const agent = new Agent({ ...tls, keepAlive: true, maxSockets: 1 })
    try {
      for (let i = 0; i < 1_000_000 && performance.now() < deadline; i += 1) {
        const start = performance.now()
        const status = await post(agent, port, load, payload).catch(() => 0)
        if (status === 200) latencies.push(performance.now() - start)
        else errors += 1
      }
    } finally {
      agent.destroy()
    }
  }
  await Promise.all(Array.from({ length: options.clients }, client))
  return summarize(latencies, (performance.now() - begin) / 1000, errors)
}
