import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  DecisionSecretError,
  MAX_CLOCK_SKEW_MS,
  bodyDigest,
  loadDecisionSecret,
  type DecisionRequest,
  macInput,
  signDecision,
  verifyDecision,
} from './decision-header.js'

const secret = randomBytes(32)
const issuedAtMs = 1_750_000_000_000
const maxAgeMs = 5_000
const body = Buffer.from('{"data":"aGVsbG8="}')
const request: DecisionRequest = {
  principal: 'spiffe://hsmgate.demo/app/payments',
  method: 'POST',
  path: '/v1/keys/payments-signing/sign',
  body,
}

function sign(overrides: Partial<Parameters<typeof signDecision>[1]> = {}): string {
  return signDecision(secret, {
    decisionId: 'd_AAAAAAAAAAAAAAAAAAAAAA',
    principal: request.principal,
    method: request.method,
    path: request.path,
    bodyDigest: bodyDigest(body),
    issuedAtMs,
    ...overrides,
  })
}

describe('signDecision', () => {
  it('produces v2.<issuedAt>.<decisionId>.<serial>.<address>.<mac>', () => {
    expect(sign()).toMatch(/^v2\.1750000000000\.d_A{22}\.\.\.[A-Za-z0-9_-]{43}$/)
    expect(sign({ certSerial: '0a1b', sourceAddress: '::1' })).toMatch(
      /^v2\.1750000000000\.d_A{22}\.0a1b\.Ojox\.[A-Za-z0-9_-]{43}$/,
    )
  })

  it('rejects an uppercase certificate serial', () => {
    expect(() => sign({ certSerial: '0A1B' })).toThrow(TypeError)
  })

  it('rejects a source address over 64 characters', () => {
    expect(() => sign({ sourceAddress: 'a'.repeat(65) })).toThrow(TypeError)
  })

  it('rejects a decision id containing a dot', () => {
    expect(() => sign({ decisionId: 'd_a.b' })).toThrow(TypeError)
  })

  it('rejects a fractional issuedAt', () => {
    expect(() => sign({ issuedAtMs: 1.5 })).toThrow(TypeError)
  })

  it('rejects a secret shorter than 32 bytes', () => {
    expect(() =>
      signDecision(Buffer.alloc(16), {
        decisionId: 'd_x',
        principal: 'p',
        method: 'GET',
        path: '/',
        bodyDigest: bodyDigest(new Uint8Array()),
        issuedAtMs,
      }),
    ).toThrow(TypeError)
  })
})

describe('verifyDecision', () => {
  it('accepts a fresh decision for the same request', () => {
    const result = verifyDecision(secret, sign(), request, issuedAtMs + 10, maxAgeMs)
    expect(result).toEqual({
      ok: true,
      decisionId: 'd_AAAAAAAAAAAAAAAAAAAAAA',
      certSerial: null,
      sourceAddress: null,
    })
  })

  it('returns the bound serial and source address', () => {
    const header = sign({ certSerial: '5e0a', sourceAddress: '2001:db8::7' })
    const result = verifyDecision(secret, header, request, issuedAtMs, maxAgeMs)
    expect(result).toEqual({
      ok: true,
      decisionId: 'd_AAAAAAAAAAAAAAAAAAAAAA',
      certSerial: '5e0a',
      sourceAddress: '2001:db8::7',
    })
  })

  it('rejects a replaced certificate serial', () => {
    const header = sign({ certSerial: '5e0a' }).replace('.5e0a.', '.5e0b.')
    const result = verifyDecision(secret, header, request, issuedAtMs, maxAgeMs)
    expect(result).toEqual({ ok: false, reason: 'decision MAC does not match the request' })
  })

  it('rejects a replaced source address', () => {
    const address = (text: string) => Buffer.from(text).toString('base64url')
    const header = sign({ sourceAddress: '10.0.0.7' }).replace(
      `.${address('10.0.0.7')}.`,
      `.${address('10.0.0.8')}.`,
    )
    const result = verifyDecision(secret, header, request, issuedAtMs, maxAgeMs)
    expect(result).toEqual({ ok: false, reason: 'decision MAC does not match the request' })
  })

  it('accepts a decision exactly maxAgeMs old', () => {
    expect(verifyDecision(secret, sign(), request, issuedAtMs + maxAgeMs, maxAgeMs).ok).toBe(true)
  })

  const tampered: [string, Partial<DecisionRequest>][] = [
    ['principal', { principal: 'spiffe://hsmgate.demo/app/reporting' }],
    ['method', { method: 'GET' }],
    ['path', { path: '/v1/keys/payments-other/sign' }],
    ['query string', { path: '/v1/keys/payments-signing/sign?x=1' }],
    ['body', { body: Buffer.from('{"data":"aGVsbG9="}') }],
    ['empty body', { body: new Uint8Array() }],
  ]
  for (const [name, change] of tampered) {
    it(`rejects a tampered ${name}`, () => {
      const result = verifyDecision(secret, sign(), { ...request, ...change }, issuedAtMs, maxAgeMs)
      expect(result).toEqual({ ok: false, reason: 'decision MAC does not match the request' })
    })
  }

  it('rejects a changed decision id', () => {
    const header = sign().replace('d_AAAA', 'd_BAAA')
    expect(verifyDecision(secret, header, request, issuedAtMs, maxAgeMs).ok).toBe(false)
  })

  it('rejects a changed issuedAt', () => {
    const header = sign().replace('.1750000000000.', '.1750000000001.')
    const result = verifyDecision(secret, header, request, issuedAtMs, maxAgeMs)
    expect(result).toEqual({ ok: false, reason: 'decision MAC does not match the request' })
  })

  it('rejects a flipped MAC character', () => {
    const header = sign()
    const last = header.at(-2) === 'A' ? 'B' : 'A'
    const flipped = header.slice(0, -2) + last + header.slice(-1)
    expect(verifyDecision(secret, flipped, request, issuedAtMs, maxAgeMs).ok).toBe(false)
  })

  it('rejects a header signed with another secret', () => {
    const other = signDecision(randomBytes(32), {
      decisionId: 'd_AAAAAAAAAAAAAAAAAAAAAA',
      principal: request.principal,
      method: request.method,
      path: request.path,
      bodyDigest: bodyDigest(body),
      issuedAtMs,
    })
    expect(verifyDecision(secret, other, request, issuedAtMs, maxAgeMs).ok).toBe(false)
  })

  it('rejects a stale decision', () => {
    const result = verifyDecision(secret, sign(), request, issuedAtMs + maxAgeMs + 1, maxAgeMs)
    expect(result).toEqual({ ok: false, reason: 'decision is older than 5000 ms' })
  })

  it('rejects a decision from the future', () => {
    const now = issuedAtMs - MAX_CLOCK_SKEW_MS - 1
    const result = verifyDecision(secret, sign(), request, now, maxAgeMs)
    expect(result).toEqual({ ok: false, reason: 'decision is issued in the future' })
  })

  it('allows clock skew up to MAX_CLOCK_SKEW_MS', () => {
    const now = issuedAtMs - MAX_CLOCK_SKEW_MS
    expect(verifyDecision(secret, sign(), request, now, maxAgeMs).ok).toBe(true)
  })

  const mac = 'A'.repeat(43)
  const malformed: [string, string | undefined][] = [
    ['missing', undefined],
    ['empty', ''],
    ['five parts', `v2.${issuedAtMs}.d_x..${mac}`],
    ['seven parts', `v2.${issuedAtMs}.d_x...${mac}.x`],
    ['version v1', `v1.${issuedAtMs}.d_x.${mac}`],
    ['version v1 with six parts', `v1.${issuedAtMs}.d_x...${mac}`],
    ['non-numeric issuedAt', `v2.12a.d_x...${mac}`],
    ['leading zero issuedAt', `v2.0${issuedAtMs}.d_x...${mac}`],
    ['negative issuedAt', `v2.-1.d_x...${mac}`],
    ['empty decision id', `v2.${issuedAtMs}....${mac}`],
    ['decision id with slash', `v2.${issuedAtMs}.d/x...${mac}`],
    ['uppercase serial', `v2.${issuedAtMs}.d_x.0A..${mac}`],
    ['address with padding', `v2.${issuedAtMs}.d_x..OjoxMg==.${mac}`],
    ['short MAC', `v2.${issuedAtMs}.d_x...${mac.slice(1)}`],
    ['padded MAC', `v2.${issuedAtMs}.d_x...${mac}=`],
    ['overlong header', `v2.${issuedAtMs}.${'d'.repeat(600)}...${mac}`],
  ]
  for (const [name, header] of malformed) {
    it(`rejects a malformed header: ${name}`, () => {
      const result = verifyDecision(secret, header, request, issuedAtMs, maxAgeMs)
      expect(result.ok).toBe(false)
    })
  }
})

describe('macInput', () => {
  it('keeps field boundaries apart', () => {
    const base = { decisionId: 'd_x', method: 'POST', bodyDigest: bodyDigest(body) }
    const first = macInput('1', { ...base, principal: 'spiffe://a/b', path: '/c' })
    const second = macInput('1', { ...base, principal: 'spiffe://a/b/', path: 'c' })
    expect(first.equals(second)).toBe(false)
  })
})

describe('bodyDigest', () => {
  it('hashes the empty body', () => {
    expect(bodyDigest(new Uint8Array())).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
  })
})

describe('loadDecisionSecret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-secret-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  function writeSecret(name: string, content: Buffer, mode: number): string {
    const path = join(dir, name)
    writeFileSync(path, content)
    chmodSync(path, mode)
    return path
  }

  it('reads a 0600 file of 32 bytes', () => {
    const content = randomBytes(32)
    const path = writeSecret('good', content, 0o600)
    expect(loadDecisionSecret(path).equals(content)).toBe(true)
  })

  it('rejects a missing file with its path', () => {
    const path = join(dir, 'absent')
    expect(() => loadDecisionSecret(path)).toThrow(DecisionSecretError)
    expect(() => loadDecisionSecret(path)).toThrow(path)
  })

  it('rejects a group-readable file naming chmod 600', () => {
    const path = writeSecret('readable', randomBytes(32), 0o640)
    expect(() => loadDecisionSecret(path)).toThrow(`chmod 600 ${path}`)
  })

  it('rejects an other-readable file', () => {
    const path = writeSecret('world', randomBytes(32), 0o604)
    expect(() => loadDecisionSecret(path)).toThrow(/mode 604/)
  })

  it('rejects a file shorter than 32 bytes', () => {
    const path = writeSecret('short', randomBytes(31), 0o600)
    expect(() => loadDecisionSecret(path)).toThrow(/31 bytes; at least 32/)
  })

  it('rejects a directory', () => {
    expect(() => loadDecisionSecret(dir)).toThrow(/not a regular file/)
  })

  it('carries the stable code', () => {
    try {
      loadDecisionSecret(join(dir, 'absent'))
      expect.unreachable()
    } catch (error) {
      expect((error as DecisionSecretError).code).toBe('decision_secret_invalid')
    }
  })
})
