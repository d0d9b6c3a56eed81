import { verify } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { divergentMembers, inspectKey } from '../../crypto-backend/hsm/key-inventory.js'
import { startBackendHarness, type BackendHarness } from '../helpers/backend-harness.js'
import { attribute, findAll, withToken } from '../helpers/softhsm-env.js'

// Key lifecycle over two real SoftHSM2 tokens: create, rotate, disable, enable, destroy, what
// every member holds afterwards, and the checks that stop use of keys in the wrong state.

let harness: BackendHarness
const b64 = (data: Buffer | string) => Buffer.from(data).toString('base64')
const message = b64('rotate me')
const codeOf = (json: Record<string, unknown>) => (json.error as { code: string }).code

/** Objects with this CKA_ID on token `index`. */
function objectsOn(index: number, ckaId: string) {
  return withToken(
    harness.env.tokens[index]!,
    (p, s) => findAll(p, s, [{ type: pkcs11js.CKA_ID, value: Buffer.from(ckaId, 'hex') }]).length,
  )
}

beforeAll(async () => {
  harness = await startBackendHarness()
}, 60_000)

afterAll(async () => {
  await harness?.close()
})

describe('create', () => {
  it('replicates every key type to both members under one CKA_ID', async () => {
    const types = [
      'ec-p256',
      'ec-p384',
      'ed25519',
      'rsa-2048',
      'aes-256',
      'aes-256-wrap',
      'hmac-sha256',
      'hmac-sha384',
    ]
    for (const type of types) {
      const response = await harness.call(`/v1/keys/payments-rep-${type}/create`, {
        type,
        tags: ['t'],
      })
      expect(response.status, JSON.stringify(response.json)).toBe(201)
      const key = (await harness.store.keyVersions(`payments-rep-${type}`))[0]!
      const states = await inspectKey(harness.cluster, Buffer.from(key.ckaId, 'hex'))
      expect(states.map((s) => s.state)).toEqual(['present', 'present'])
      expect(states[0]?.fingerprint).toBe(states[1]?.fingerprint)
      expect(divergentMembers(states)).toEqual([])
    }
  })

  it('private and secret keys are sensitive; extractable only under a trusted key', async () => {
    const key = (await harness.store.keyVersions('payments-rep-aes-256'))[0]!
    const flags = await withToken(harness.env.tokens[1]!, (p, s) => {
      const [handle] = findAll(p, s, [
        { type: pkcs11js.CKA_ID, value: Buffer.from(key.ckaId, 'hex') },
      ])
      return [pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_WRAP_WITH_TRUSTED].map(
        (t) => attribute(p, s, handle!, t)[0],
      )
    })
    expect(flags).toEqual([1, 1])
  })

  it('rejects a bad name, an existing name and a wrong size, naming the fix', async () => {
    const exists = await harness.call('/v1/keys/payments-rep-ec-p256/create', { type: 'ec' })
    expect(exists.status).toBe(409)
    const size = await harness.call('/v1/keys/payments-new-rsa/create', { type: 'rsa', size: 1024 })
    expect(size.status).toBe(400)
    expect(JSON.stringify(size.json)).toContain('2048, 3072, 4096')
    const type = await harness.call('/v1/keys/payments-new-x/create', { type: 'dsa' })
    expect(JSON.stringify(type.json)).toContain('allowed: ec, rsa, ed25519')
    const name = await harness.call('/v1/keys/Bad_Name/create', { type: 'ec' })
    expect(name.status).toBe(400)
  })

  it('rejects a name outside the caller namespace', async () => {
    await harness.store.putApplication({
      name: 'payments-eu',
      team: 'payments',
      hosts: [],
      addresses: [],
      suspended: false,
      createdAt: new Date().toISOString(),
    })
    // The caller is payments; payments-eu-x belongs to the longer registered name payments-eu.
    for (const name of ['reporting-x', 'loose', 'payments-eu-x']) {
      const response = await harness.call(`/v1/keys/${name}/create`, { type: 'ec' })
      expect(response.status, name).toBe(403)
      expect(response.json, name).toMatchObject({ error: { code: 'key_namespace' } })
      expect(await harness.store.keyVersions(name), name).toEqual([])
    }
    const own = await harness.call('/v1/keys/payments-euro/create', { type: 'ec' })
    expect(own.status).toBe(201)
    expect(own.json).toMatchObject({ owner: 'payments' })
  })

  it('keys check finds a member that misses a key', async () => {
    const key = (await harness.store.keyVersions('payments-rep-hmac-sha256'))[0]!
    await withToken(harness.env.tokens[1]!, (p, s) => {
      for (const h of findAll(p, s, [
        { type: pkcs11js.CKA_ID, value: Buffer.from(key.ckaId, 'hex') },
      ])) {
        p.C_DestroyObject(s, h)
      }
    })
    const states = await inspectKey(harness.cluster, Buffer.from(key.ckaId, 'hex'))
    expect(divergentMembers(states).map((s) => [s.member, s.state])).toEqual([['hsm-b', 'missing']])
  })
})

describe('rotate', () => {
  it('signs with the newest version; old signatures verify against their version', async () => {
    await harness.call('/v1/keys/payments-rot-sign/create', { type: 'ec' })
    const v1 = await harness.call('/v1/keys/payments-rot-sign/sign', { message })
    const rotated = await harness.call('/v1/keys/payments-rot-sign/rotate', {})
    expect(rotated.json.version).toBe(2)
    const v2 = await harness.call('/v1/keys/payments-rot-sign/sign', { message })
    expect(v2.json.version).toBe(2)
    const pem1 = String(
      (await harness.call('/v1/keys/payments-rot-sign?version=1')).json.public_key_pem,
    )
    const pem2 = String((await harness.call('/v1/keys/payments-rot-sign')).json.public_key_pem)
    expect(pem1).not.toBe(pem2)
    const sig1 = Buffer.from(String(v1.json.signature), 'base64')
    expect(verify('sha256', Buffer.from('rotate me'), pem1, sig1)).toBe(true)
    expect(verify('sha256', Buffer.from('rotate me'), pem2, sig1)).toBe(false)
    const old = await harness.call('/v1/keys/payments-rot-sign/verify', {
      message,
      signature: v1.json.signature,
      version: 1,
    })
    expect(old.json.valid).toBe(true)
    const missing = await harness.call('/v1/keys/payments-rot-sign/verify', {
      message,
      signature: v1.json.signature,
      version: 7,
    })
    expect(missing.status).toBe(404)
  })

  it('encrypts with the newest version and still decrypts old ciphertexts', async () => {
    await harness.call('/v1/keys/payments-rot-data/create', { type: 'aes' })
    const context = { a: 'b' }
    const old = await harness.call('/v1/keys/payments-rot-data/encrypt', {
      plaintext: b64('v1 data'),
      context,
    })
    await harness.call('/v1/keys/payments-rot-data/rotate', {})
    const fresh = await harness.call('/v1/keys/payments-rot-data/encrypt', {
      plaintext: b64('v2 data'),
      context,
    })
    expect([old.json.version, fresh.json.version]).toEqual([1, 2])
    for (const [blob, text] of [
      [old, 'v1 data'],
      [fresh, 'v2 data'],
    ] as const) {
      const opened = await harness.call('/v1/keys/payments-rot-data/decrypt', {
        ciphertext: blob.json.ciphertext,
        context,
      })
      expect(Buffer.from(String(opened.json.plaintext), 'base64').toString()).toBe(text)
    }
    const forged = Buffer.from(String(old.json.ciphertext), 'base64')
    forged.writeUInt32BE(9, 3)
    const unknown = await harness.call('/v1/keys/payments-rot-data/decrypt', {
      ciphertext: b64(forged),
      context,
    })
    expect(unknown.status).toBe(404)
  })
})

describe('disable, enable, destroy', () => {
  it('a disabled key is 409 until enabled again', async () => {
    await harness.call('/v1/keys/payments-toggle/create', { type: 'ed25519' })
    expect((await harness.call('/v1/keys/payments-toggle/disable', {})).status).toBe(200)
    const denied = await harness.call('/v1/keys/payments-toggle/sign', { message })
    expect([denied.status, codeOf(denied.json)]).toEqual([409, 'key_disabled'])
    expect((await harness.call('/v1/keys/payments-toggle/enable', {})).status).toBe(200)
    expect((await harness.call('/v1/keys/payments-toggle/sign', { message })).status).toBe(200)
  })

  it('destroy removes every version from every member; later use is 409', async () => {
    await harness.call('/v1/keys/payments-doomed/create', { type: 'rsa', size: 2048 })
    await harness.call('/v1/keys/payments-doomed/rotate', {})
    const versions = await harness.store.keyVersions('payments-doomed')
    const destroyed = await harness.call('/v1/keys/payments-doomed/destroy', {})
    expect(destroyed.json).toMatchObject({
      state: 'destroyed',
      versions: [2, 1],
      members_pending: [],
    })
    for (const version of versions) {
      expect([await objectsOn(0, version.ckaId), await objectsOn(1, version.ckaId)]).toEqual([0, 0])
    }
    for (const path of ['sign', 'verify', 'encrypt', 'rotate', 'enable']) {
      const response = await harness.call(
        `/v1/keys/payments-doomed/${path}`,
        path === 'sign' ? { message } : {},
      )
      expect(response.status, path).toBe(409)
    }
    const again = await harness.call('/v1/keys/payments-doomed/create', { type: 'ec' })
    expect(again.status).toBe(409)
  })
})
