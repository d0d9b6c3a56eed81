import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { connect, type TLSSocket } from 'node:tls'
import { join } from 'node:path'

/** TLS options that present a demo application's client certificate. */
export function appCredentials(dir: string, app: string) {
  const base = join(dir, 'apps', app)
  return {
    ca: readFileSync(join(base, 'ca.crt')),
    cert: readFileSync(join(base, 'client.crt')),
    key: readFileSync(join(base, 'client.key')),
  }
}

/** Opens a new TLS connection and returns the serial of the certificate the server sent. */
export function servedSerial(port: number, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...appCredentials(dir, 'payments') }, () => {
      resolve(socket.getPeerCertificate().serialNumber)
      socket.destroy()
    })
    socket.setTimeout(5_000, () => socket.destroy(new Error('TLS connect timed out')))
    socket.once('error', reject)
  })
}

export interface KeptRequest {
  status: number
  body: string
  /** Whether the request went over a connection that an earlier request opened. */
  reused: boolean
  serverSerial: string
}

/** GETs `path` through `agent`, which keeps its one connection open between requests. */
export function getKept(agent: Agent, port: number, path: string): Promise<KeptRequest> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 5_000 }, (res) => {
      // The socket goes back to the agent once the body ends; read its certificate first.
      const serverSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket, serverSerial }),
      )
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** Creates an agent with one kept-alive connection presenting `app`'s certificate. */
export function keepAliveAgent(dir: string, app: string): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ...appCredentials(dir, app) })
}

/** Returns the pid of the Envoy that `hsmgate up` runs for the setup in `dir`. */
export function envoyPid(dir: string): number {
  const out = execFileSync('pgrep', ['-f', '--', `-c ${join(dir, 'run', 'envoy.json')}`], {
    encoding: 'utf8',
  })
  return Number(out.trim().split('\n')[0])
}

/** Polls `probe` every 200 ms until it returns true or `ms` pass; returns the elapsed time. */
export async function within(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < ms) {
    if (await probe()) return Date.now() - start
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`condition not met within ${ms} ms`)
}
