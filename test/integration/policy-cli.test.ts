import { execFile } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI } from '../helpers/gateway-process.js'
import { writeGuideSetup } from '../helpers/policy-guide.js'

const dir = writeGuideSetup()
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs the built CLI and resolves with its exit code and output, whatever the code. */
function hsmgate(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

describe('hsmgate policy', () => {
  it('check reports a valid directory', async () => {
    const result = await hsmgate(['policy', 'check', '--policies', join(dir, 'policies')])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^ok: 13 policies in 9 files/)
  })

  it('check names file, line and column of an error and exits 78', async () => {
    const bad = join(dir, 'policies', 'zz-bad.cedar')
    writeFileSync(
      bad,
      '@id("typo")\npermit (principal, action, resource)\nwhen { resource.ownr == "x" };\n',
    )
    try {
      const result = await hsmgate(['policy', 'check', '--policies', join(dir, 'policies')])
      expect(result.code).toBe(78)
      expect(result.stderr).toMatch(/zz-bad\.cedar:3:8: .*ownr/)
    } finally {
      rmSync(bad)
    }
  })

  it('test passes the guide cases and exits 0', async () => {
    const result = await hsmgate(['policy', 'test', join(dir, 'cases.yaml')])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/18 cases, 18 passed, 0 failed/)
  })

  it('test prints a diff and exits 1 on a mismatch', async () => {
    const file = join(dir, 'wrong.yaml')
    writeFileSync(
      file,
      [
        'policies: policies',
        'applications: { reporting: {} }',
        'keys: { payments-signing: { owner: payments, classification: confidential } }',
        'cases:',
        '  - { name: wrong, principal: reporting, action: sign, key: payments-signing, expect: allow, reason: x }',
      ].join('\n'),
    )
    const result = await hsmgate(['policy', 'test', file])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('FAIL  wrong')
    expect(result.stdout).toContain('decision: expected allow, got deny')
    expect(result.stdout).toContain('reason: expected "x", got "no policy permits this request"')
  })

  it('explain prints the determining policy and its annotations', async () => {
    const args = ['policy', 'explain', '--file', join(dir, 'cases.yaml')]
    const result = await hsmgate([...args, '--case', 'settlement signing on Sunday'])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('decision: deny')
    expect(result.stdout).toMatch(/business-hours \(forbid, .*business-hours\.cedar:2:1\)/)
    expect(result.stdout).toContain('@reason: this key may be used Monday to Friday')
  })

  it('rejects a missing subcommand or file with exit 2', async () => {
    expect((await hsmgate(['policy'])).code).toBe(2)
    expect((await hsmgate(['policy', 'test'])).code).toBe(2)
  })
})
