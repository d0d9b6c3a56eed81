import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI, freePorts, isRunning } from '../helpers/gateway-process.js'

const dir = join(mkdtempSync(join(tmpdir(), 'hsmgate-demo-')), 'var')

afterAll(() => rmSync(join(dir, '..'), { recursive: true, force: true }))

describe('hsmgate demo', () => {
  it('shows a signature that openssl verifies, then stops cleanly', async () => {
    const [port, adminPort, enrollPort] = (await freePorts(3)) as [number, number, number]
    const demo = spawn(
      process.execPath,
      [
        ...[CLI, 'demo', '--dir', dir, '--port', String(port), '--admin-port', String(adminPort)],
        ...['--enroll-port', String(enrollPort)],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' } },
    )
    let out = ''
    let err = ''
    demo.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    demo.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => demo.once('exit', resolve))

    const deadline = Date.now() + 90_000
    while (!out.includes('gateway running') && demo.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(out, err).toContain('gateway running')
    expect(out).toContain('"signature"')
    expect(out).toContain('Verified OK')

    demo.kill('SIGINT')
    expect(await exited).toBe(0)
    const left = (() => {
      try {
        return execFileSync('pgrep', ['-f', dir]).toString().trim()
      } catch {
        return ''
      }
    })()
    expect(left).toBe('')
    expect(isRunning(demo.pid!)).toBe(false)
  })
})
