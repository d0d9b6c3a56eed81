import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { secretsInLogs } from './log-scan.js'

let dir = ''

function setup(log: string): void {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-logscan-'))
  mkdirSync(join(dir, 'secrets'))
  mkdirSync(join(dir, 'logs'))
  writeFileSync(join(dir, 'secrets', 'hsm-a.pin'), '83f1c0a9d2e4\n')
  writeFileSync(join(dir, 'secrets', 'decision.key'), Buffer.from('0123456789abcdef0123'))
  writeFileSync(join(dir, 'logs', 'authz.log'), log)
}

afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('log scan', () => {
  it('passes clean logs', () => {
    setup('{"msg":"authorization decision","allowed":true}\n')
    expect(secretsInLogs(dir)).toEqual([])
  })

  it('finds a PIN', () => {
    setup('{"msg":"login failed","pin":"83f1c0a9d2e4"}\n')
    expect(secretsInLogs(dir)).toEqual([`hsm-a.pin of ${dir}`])
  })

  it('finds the decision secret in base64', () => {
    const secret = Buffer.from('0123456789abcdef0123').toString('base64')
    setup(`{"msg":"header","secret":"${secret}"}\n`)
    expect(secretsInLogs(dir)).toEqual([`decision.key as base64 of ${dir}`])
  })

  it('finds a private key in extra output', () => {
    setup('')
    expect(secretsInLogs(dir, '-----BEGIN PRIVATE KEY-----')).toEqual([
      `a private key PEM in the logs of ${dir}`,
    ])
  })
})
