import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newKeyAndCsr } from '../../client/key-material.js'
import { checkCsr } from './csr-check.js'

let dir: string

/** Makes a CSR with openssl; `args` choose the key. */
function opensslCsr(name: string, args: string[]): string {
  const out = join(dir, `${name}.csr`)
  execFileSync(
    'openssl',
    ['req', '-new', '-nodes', ...args, '-keyout', join(dir, `${name}.key`), '-out', out].concat([
      '-subj',
      '/CN=evil',
      '-addext',
      'subjectAltName=URI:spiffe://hsmgate.demo/app/x',
    ]),
    { stdio: 'pipe', timeout: 30_000 },
  )
  return readFileSync(out, 'utf8')
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-csr-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('checkCsr', () => {
  it('accepts the agent CSRs for ECDSA P-256 and RSA 2048', async () => {
    expect((await checkCsr((await newKeyAndCsr('ec-p256')).csrPem)).keyType).toBe('ec-p256')
    expect((await checkCsr((await newKeyAndCsr('rsa-2048')).csrPem)).keyType).toBe('rsa-2048')
  })

  it('rejects RSA under 2048 bits and curves other than P-256', async () => {
    const rsa1024 = opensslCsr('rsa1024', ['-newkey', 'rsa:1024'])
    await expect(checkCsr(rsa1024)).rejects.toThrow(/rsa of 1024 bits/)
    const p384 = opensslCsr('p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'])
    await expect(checkCsr(p384)).rejects.toThrow(/secp384r1/)
  })

  it('rejects a CSR whose signature does not verify', async () => {
    const pem = (await newKeyAndCsr('ec-p256')).csrPem
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
    const at = der.length - 5
    der.writeUInt8(der.readUInt8(at) ^ 0x01, at)
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
    await expect(checkCsr(tampered)).rejects.toThrow(/signature|not a PKCS#10/)
  })

  it('rejects text that is not a CSR', async () => {
    await expect(checkCsr('hello')).rejects.toThrow(/PKCS#10/)
    await expect(checkCsr(42)).rejects.toThrow(/PEM certificate request/)
  })
})
