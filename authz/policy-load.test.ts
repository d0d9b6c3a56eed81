import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { policyDirWith } from '../test/helpers/policy-fixtures.js'
import { PolicyError, loadPolicyDir } from './policy-load.js'
import { watchPolicies } from './policy-watch.js'

const dirs: string[] = []
function dirWith(files: Record<string, string>): string {
  const dir = policyDirWith(files)
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

function loadError(files: Record<string, string>): PolicyError {
  const dir = dirWith(files)
  try {
    loadPolicyDir(dir)
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError)
    return error as PolicyError
  }
  throw new Error('expected a PolicyError')
}

const PERMIT = '@id("all")\npermit (principal, action, resource);\n'

describe('loadPolicyDir', () => {
  it('keeps ids from @id annotations', () => {
    const source = loadPolicyDir(dirWith({ 'a.cedar': PERMIT }))
    expect([...source.policies.keys()]).toEqual(['all'])
    expect(source.policies.get('all')).toMatchObject({ line: 1, column: 1, effect: 'permit' })
  })

  it('names file, line and column of a syntax error', () => {
    const error = loadError({
      'b.cedar': `${PERMIT}\n@id("x")\npermit (principal, action, resource) when { x };`,
    })
    expect(error.problems[0]).toMatch(/b\.cedar:5:45: .*invalid variable: x.*did you mean/)
  })

  it('names an attribute the schema does not have and suggests the right one', () => {
    const error = loadError({
      'c.cedar':
        '@id("typo")\npermit (principal is Hsmgate::Application, action, resource)\n' +
        'when { principal.suspnded == false };\n',
    })
    expect(error.problems[0]).toMatch(/c\.cedar:3:8: .*suspnded.*did you mean `suspended`/)
  })

  it('rejects an unknown action', () => {
    const error = loadError({
      'd.cedar': '@id("x")\npermit (principal, action == Hsmgate::Action::"mint", resource);',
    })
    expect(error.problems[0]).toMatch(/d\.cedar:2:\d+: .*mint/)
  })

  it('requires @id on every policy and @reason on forbids', () => {
    const error = loadError({
      'e.cedar': `${PERMIT}permit (principal, action, resource);\n@id("f")\nforbid (principal, action, resource);\n`,
    })
    expect(error.problems).toEqual([
      expect.stringMatching(/e\.cedar:3:1: add @id/),
      expect.stringMatching(/e\.cedar:4:1: add @reason\("\.\.\."\) to forbid policy 'f'/),
    ])
  })

  it('rejects an id used in two files', () => {
    const error = loadError({ 'a.cedar': PERMIT, 'b.cedar': PERMIT })
    expect(error.problems[0]).toMatch(
      /b\.cedar:1:1: policy id 'all' is also used at .*a\.cedar:1:1/,
    )
  })

  it('rejects an empty or missing directory', () => {
    expect(() => loadPolicyDir(dirWith({ 'notes.txt': 'x' }))).toThrow(/no \.cedar files/)
    expect(() => loadPolicyDir(join(tmpdir(), 'hsmgate-no-such-dir'))).toThrow(PolicyError)
  })
})

describe('watchPolicies', () => {
  const logger = pino({ level: 'silent' })

  it('swaps in a valid edit and keeps the last good set after a bad one', async () => {
    const dir = dirWith({ 'a.cedar': PERMIT })
    const watcher = watchPolicies(dir, { logger, intervalMs: 60_000 })
    try {
      await watcher.reloadIfChanged()
      const first = watcher.current()
      writeFileSync(join(dir, 'a.cedar'), 'permit (principal, action, resource) when {')
      await watcher.reloadIfChanged()
      await watcher.reloadIfChanged()
      expect(watcher.current()).toBe(first)

      const next = join(dir, 'a.cedar.tmp')
      writeFileSync(next, '@id("other")\npermit (principal, action, resource);\n')
      renameSync(next, join(dir, 'a.cedar'))
      await watcher.reloadIfChanged()
      await watcher.reloadIfChanged()
      expect([...watcher.current().policies.keys()]).toEqual(['other'])
    } finally {
      watcher.close()
    }
  })

  it('waits for a change to settle before loading it', async () => {
    const dir = dirWith({ 'a.cedar': PERMIT })
    const watcher = watchPolicies(dir, { logger, intervalMs: 60_000 })
    try {
      await watcher.reloadIfChanged()
      const first = watcher.current()
      writeFileSync(join(dir, 'a.cedar'), '@id("half")\npermit (principal, action, resource);\n')
      await watcher.reloadIfChanged()
      expect(watcher.current()).toBe(first)
      writeFileSync(join(dir, 'a.cedar'), '@id("whole")\npermit (principal, action, resource);\n//')
      await watcher.reloadIfChanged()
      expect(watcher.current()).toBe(first)
      await watcher.reloadIfChanged()
      expect([...watcher.current().policies.keys()]).toEqual(['whole'])
    } finally {
      watcher.close()
    }
  })

  it('refuses to start with an invalid directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmgate-policies-'))
    dirs.push(dir)
    expect(() => watchPolicies(dir, { logger })).toThrow(PolicyError)
  })
})
