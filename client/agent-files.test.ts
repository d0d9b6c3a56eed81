import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { chmodSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { agentPaths, readCredentials, writeCredentials } from './agent-files.js'
import { ensurePrivateDir } from './atomic-files.js'
import { backoffDelay, renewalDue } from './backoff.js'

const root = mkdtempSync(join(tmpdir(), 'hsmgate-agent-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('agent files', () => {
  it('writes key and certificate with mode 0600 in a 0700 directory', () => {
    const dir = join(root, 'a')
    writeCredentials(dir, 'KEY', 'CERT')
    const paths = agentPaths(dir)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(paths.key).mode & 0o777).toBe(0o600)
    expect(statSync(paths.cert).mode & 0o777).toBe(0o600)
    expect(readFileSync(paths.key, 'utf8')).toBe('KEY')
    writeCredentials(dir, 'KEY2', 'CERT2')
    expect(readFileSync(paths.cert, 'utf8')).toBe('CERT2')
    expect(existsSync(`${paths.key}.next`) || existsSync(`${paths.cert}.next`)).toBe(false)
  })

  it('refuses a directory that other users can enter', () => {
    const dir = join(root, 'open')
    mkdirSync(dir)
    chmodSync(dir, 0o755)
    expect(() => ensurePrivateDir(dir)).toThrow(/chmod 700/)
  })

  it('finishes a write that stopped between the two renames', () => {
    const dir = join(root, 'b')
    writeCredentials(dir, 'OLD KEY', 'OLD CERT')
    const paths = agentPaths(dir)
    const cert = join(root, 'c.pem')
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'].concat([
        '-nodes',
        '-keyout',
        join(root, 'k.pem'),
        '-out',
        cert,
        '-subj',
        '/CN=t',
      ]),
      {
        stdio: 'pipe',
        timeout: 10_000,
      },
    )
    // The new key is in place, the new certificate still staged: the state after a crash.
    writeFileSync(paths.key, 'NEW KEY')
    writeFileSync(`${paths.cert}.next`, readFileSync(cert, 'utf8'))
    const read = readCredentials(dir)
    expect(read.keyPem).toBe('NEW KEY')
    expect(read.chainPem).toBe(readFileSync(cert, 'utf8'))
    expect(existsSync(`${paths.cert}.next`)).toBe(false)
  })
})

describe('renewal timing', () => {
  it('is due after two thirds of the lifetime', () => {
    const due = renewalDue(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T01:00:00Z'))
    expect(due.toISOString()).toBe('2026-01-01T00:40:00.000Z')
  })

  it('is due after the given fraction of the lifetime', () => {
    const notBefore = new Date('2026-01-01T00:00:00Z')
    const due = renewalDue(notBefore, new Date('2026-01-01T00:05:00Z'), 0.25)
    expect(due.toISOString()).toBe('2026-01-01T00:01:15.000Z')
  })

  it('backs off exponentially with jitter up to the cap', () => {
    const policy = { baseMs: 1000, capMs: 8000 }
    expect(backoffDelay(0, policy, () => 0.999)).toBe(999)
    expect(backoffDelay(2, policy, () => 0.5)).toBe(2000)
    expect(backoffDelay(10, policy, () => 0.999)).toBe(7992)
    expect(backoffDelay(1000, policy, () => 0)).toBe(0)
  })
})
