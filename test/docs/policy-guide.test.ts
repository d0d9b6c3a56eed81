import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadPolicyCases, runPolicyCases } from '../../authz/policy-cases.js'
import { loadPolicyEngine } from '../../authz/policy-watch.js'
import { starterPolicies } from '../../cli/init/starter-policies.js'
import { guideBlocks, writeGuideSetup } from '../helpers/policy-guide.js'

const dir = writeGuideSetup()
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('docs/policy-guide.md', () => {
  it('shows the starter policies exactly as hsmgate init writes them', () => {
    const blocks = guideBlocks().cedar
    for (const [name, text] of Object.entries(starterPolicies())) {
      const block = blocks.find((b) => b.startsWith(`// policies/${name}\n`))
      expect(block, name).toBeDefined()
      const body = (s: string) => s.replace(/^\/\/.*\n/gm, '').trim()
      expect(body(block as string)).toBe(body(text))
    }
  })

  it('has worked examples whose cases all pass', () => {
    const engine = loadPolicyEngine(join(dir, 'policies'))
    const file = loadPolicyCases(join(dir, 'cases.yaml'))
    expect(file.cases.length).toBeGreaterThanOrEqual(17)
    const failures = runPolicyCases(engine, file).filter((r) => r.mismatches.length > 0)
    expect(failures).toEqual([])
  })

  it('covers each required rule with a policy', () => {
    const engine = loadPolicyEngine(join(dir, 'policies'))
    expect([...engine.policies.keys()].sort()).toEqual([
      'business-hours',
      'context-names-caller',
      'crl-public',
      'enroll-with-token',
      'key-namespace',
      'list-and-random',
      'own-keys',
      'probe-health',
      'renew-own-certificate',
      'restricted-needs-short-certificate',
      'restricted-needs-tpm',
      'source-matches-host',
      'suspended-application',
    ])
  })
})
