import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/gateway-process.js'

const run = promisify(execFile)
const script = join(ROOT, 'deploy', 'install.sh')

describe('install script', () => {
  it('finds everything in place on a second run', async () => {
    const { stdout } = await run('bash', [script])
    expect(stdout).toContain('system packages present')
    expect(stdout).toMatch(/envoy .* \(version: [0-9a-f]+\/1\.\d+\.\d+\//)
  })

  it('names ENVOY_BIN when it points at no executable', async () => {
    const failure = await run('bash', [script], {
      env: { ...process.env, ENVOY_BIN: '/nonexistent/envoy' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    )
    expect(failure.code).toBe(1)
    expect(failure.stderr).toContain('ENVOY_BIN=/nonexistent/envoy is not an executable file')
  })
})
