import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { RulesError, keyMatches, loadRules, parseRules, watchRules } from './rules.js'

const example = `rules:
  - principal: spiffe://hsmgate.demo/app/payments
    operations: [list-keys, random]
  - principal: spiffe://hsmgate.demo/app/payments
    keys: ['payments-*']
    operations: [sign, verify, encrypt, decrypt]
  - principal: spiffe://hsmgate.demo/app/reporting
    keys: [reports-signing]
    operations: [verify]
  - principal: spiffe://hsmgate.demo/hsmgate/probe
    operations: [health]
`

const payments = 'spiffe://hsmgate.demo/app/payments'
const reporting = 'spiffe://hsmgate.demo/app/reporting'

function parseError(text: string, trustDomain?: string): string {
  try {
    parseRules(text, '/etc/hsmgate/rules.yaml', trustDomain)
  } catch (error) {
    expect(error).toBeInstanceOf(RulesError)
    expect((error as RulesError).code).toBe('rules_invalid')
    return (error as Error).message
  }
  throw new Error('parseRules accepted invalid rules')
}

describe('parseRules', () => {
  it('loads the example', () => {
    const rules = parseRules(example, 'rules.yaml', 'hsmgate.demo')
    expect(rules.rules).toHaveLength(4)
    expect(rules.rules[1]?.keys).toEqual(['payments-*'])
    expect(rules.version).toMatch(/^[0-9a-f]{12}$/)
  })

  it('accepts an empty rules list', () => {
    expect(parseRules('rules: []', 'rules.yaml').rules).toEqual([])
  })

  it('rejects an empty file', () => {
    expect(parseError('')).toContain("is empty; write 'rules: []'")
  })

  it('names file, rule index and field for an unknown operation', () => {
    const message = parseError(`rules:
  - principal: ${payments}
    operations: [list-keys]
  - principal: ${payments}
    operations: [random, delete]
`)
    expect(message).toContain('/etc/hsmgate/rules.yaml is invalid')
    expect(message).toContain('rules[1].operations[1]')
    expect(message).toContain(
      'list-keys, random, health, describe-key, sign, verify, encrypt, decrypt',
    )
  })

  it('rejects a missing principal', () => {
    expect(parseError('rules:\n  - operations: [random]\n')).toContain('rules[0].principal')
  })

  it('rejects a principal that is not a SPIFFE ID', () => {
    const message = parseError('rules:\n  - principal: payments\n    operations: [random]\n')
    expect(message).toContain('rules[0].principal: must be a SPIFFE ID')
  })

  it('rejects a principal in another trust domain', () => {
    const text = `rules:\n  - principal: spiffe://other.example/app/x\n    operations: [random]\n`
    expect(parseError(text, 'hsmgate.demo')).toContain(
      'rules[0].principal: must be in trust domain hsmgate.demo',
    )
  })

  it('rejects an empty operations list', () => {
    const message = parseError(`rules:\n  - principal: ${payments}\n    operations: []\n`)
    expect(message).toContain('rules[0].operations: must list at least one operation')
  })

  it('rejects an invalid key pattern', () => {
    const text = `rules:\n  - principal: ${payments}\n    keys: ['pay*ments']\n    operations: [sign]\n`
    expect(parseError(text)).toContain('rules[0].keys[0]')
  })

  it('rejects a key-less operation in a rule with keys', () => {
    const text = `rules:\n  - principal: ${payments}\n    keys: [k]\n    operations: [sign, random]\n`
    expect(parseError(text)).toContain('rules[0].operations[1]: random takes no key')
  })

  it('rejects a keyed operation in a rule without keys', () => {
    const text = `rules:\n  - principal: ${payments}\n    operations: [sign]\n`
    expect(parseError(text)).toContain('rules[0].operations[0]: sign needs a key')
  })

  it('rejects an unknown field', () => {
    const text = `rules:\n  - principal: ${payments}\n    key: [k]\n    operations: [random]\n`
    expect(parseError(text)).toMatch(/rules\[0\].*key/)
  })

  it('rejects a file without a rules list', () => {
    expect(parseError('allow: everything\n')).toContain('rules')
  })

  it('rejects invalid YAML', () => {
    expect(parseError('rules: [\n')).toContain('/etc/hsmgate/rules.yaml is not valid YAML')
  })
})

describe('RuleSet.evaluate', () => {
  const rules = parseRules(example, 'rules.yaml')

  it('allows a key-less operation from a rule without keys', () => {
    expect(rules.evaluate(payments, { name: 'random' })).toEqual({ allowed: true, ruleIndex: 0 })
  })

  it('allows a keyed operation on a matching prefix', () => {
    const decision = rules.evaluate(payments, { name: 'sign', key: 'payments-signing' })
    expect(decision).toEqual({ allowed: true, ruleIndex: 1 })
  })

  it('allows a keyed operation on an exact key', () => {
    const decision = rules.evaluate(reporting, { name: 'verify', key: 'reports-signing' })
    expect(decision).toEqual({ allowed: true, ruleIndex: 2 })
  })

  it('denies a key outside the patterns', () => {
    const decision = rules.evaluate(reporting, { name: 'verify', key: 'payments-signing' })
    expect(decision).toEqual({ allowed: false, reason: 'key_not_granted' })
  })

  it('denies an operation the principal lacks', () => {
    const decision = rules.evaluate(reporting, { name: 'sign', key: 'reports-signing' })
    expect(decision).toEqual({ allowed: false, reason: 'operation_not_granted' })
  })

  it('denies a principal without rules', () => {
    const decision = rules.evaluate('spiffe://hsmgate.demo/app/unknown', { name: 'random' })
    expect(decision).toEqual({ allowed: false, reason: 'no_rule_for_principal' })
  })

  it('denies health to a principal granted only other operations', () => {
    const decision = rules.evaluate(payments, { name: 'health' })
    expect(decision).toEqual({ allowed: false, reason: 'operation_not_granted' })
  })

  it('denies everything with no rules', () => {
    const empty = parseRules('rules: []', 'rules.yaml')
    expect(empty.evaluate(payments, { name: 'list-keys' }).allowed).toBe(false)
  })
})

describe('keyMatches', () => {
  const cases: [string, string, boolean][] = [
    ['payments-*', 'payments-signing', true],
    ['payments-*', 'payments-', true],
    ['payments-*', 'payments', false],
    ['payments-*', 'xpayments-signing', false],
    ['payments-signing', 'payments-signing', true],
    ['payments-signing', 'payments-signing-2', false],
    ['*', 'anything', true],
  ]
  for (const [pattern, key, expected] of cases) {
    it(`${pattern} against ${key} is ${expected}`, () => {
      expect(keyMatches(pattern, key)).toBe(expected)
    })
  }
})

describe('loadRules', () => {
  it('names a missing file', () => {
    expect(() => loadRules('/nonexistent/rules.yaml')).toThrow(
      'cannot read rules file /nonexistent/rules.yaml',
    )
  })
})

describe('watchRules', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-rules-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = []
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
        callback()
      },
    })
    return { logger: pino({ level: 'info' }, stream), lines }
  }

  const onlyRandom = `rules:\n  - principal: ${payments}\n    operations: [random]\n`
  const onlyListKeys = `rules:\n  - principal: ${payments}\n    operations: [list-keys]\n`

  it('throws on an invalid initial file', () => {
    const file = join(dir, 'initial-bad.yaml')
    writeFileSync(file, 'rules: [\n')
    expect(() => watchRules(file, { logger: captureLogger().logger })).toThrow(RulesError)
  })

  it('replaces the rules after an edit', async () => {
    const file = join(dir, 'edit.yaml')
    writeFileSync(file, onlyRandom)
    const { logger, lines } = captureLogger()
    const watcher = watchRules(file, { logger, intervalMs: 60_000 })
    try {
      expect(watcher.current().evaluate(payments, { name: 'random' }).allowed).toBe(true)
      writeFileSync(file, onlyListKeys)
      await watcher.reloadIfChanged()
      expect(watcher.current().evaluate(payments, { name: 'random' }).allowed).toBe(false)
      expect(watcher.current().evaluate(payments, { name: 'list-keys' }).allowed).toBe(true)
      expect(lines.some((l) => l.msg === 'authorization rules reloaded')).toBe(true)
    } finally {
      watcher.close()
    }
  })

  it('follows a replacement by rename', async () => {
    const file = join(dir, 'rename.yaml')
    writeFileSync(file, onlyRandom)
    const watcher = watchRules(file, { logger: captureLogger().logger, intervalMs: 60_000 })
    try {
      writeFileSync(`${file}.tmp`, onlyListKeys)
      renameSync(`${file}.tmp`, file)
      await watcher.reloadIfChanged()
      expect(watcher.current().evaluate(payments, { name: 'list-keys' }).allowed).toBe(true)
    } finally {
      watcher.close()
    }
  })

  it('keeps the last good rules after a bad edit and logs once', async () => {
    const file = join(dir, 'bad-edit.yaml')
    writeFileSync(file, onlyRandom)
    const { logger, lines } = captureLogger()
    const watcher = watchRules(file, { logger, intervalMs: 60_000 })
    try {
      const before = watcher.current()
      writeFileSync(file, `rules:\n  - principal: ${payments}\n    operations: [randomm]\n`)
      await watcher.reloadIfChanged()
      await watcher.reloadIfChanged()
      expect(watcher.current()).toBe(before)
      const errors = lines.filter((l) => l.level === 50)
      expect(errors).toHaveLength(1)
      expect(JSON.stringify(errors[0])).toContain('rules[0].operations[0]')
    } finally {
      watcher.close()
    }
  })

  it('keeps the last good rules when the file is deleted', async () => {
    const file = join(dir, 'deleted.yaml')
    writeFileSync(file, onlyRandom)
    const { logger, lines } = captureLogger()
    const watcher = watchRules(file, { logger, intervalMs: 60_000 })
    try {
      unlinkSync(file)
      await watcher.reloadIfChanged()
      await watcher.reloadIfChanged()
      expect(watcher.current().evaluate(payments, { name: 'random' }).allowed).toBe(true)
      expect(lines.filter((l) => l.level === 50)).toHaveLength(1)
    } finally {
      watcher.close()
    }
  })

  it('polls on its own timer', async () => {
    const file = join(dir, 'poll.yaml')
    writeFileSync(file, onlyRandom)
    const watcher = watchRules(file, { logger: captureLogger().logger, intervalMs: 20 })
    try {
      writeFileSync(file, onlyListKeys)
      let allowed = false
      for (let attempt = 0; attempt < 100 && !allowed; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        allowed = watcher.current().evaluate(payments, { name: 'list-keys' }).allowed
      }
      expect(allowed).toBe(true)
    } finally {
      watcher.close()
    }
  })
})
