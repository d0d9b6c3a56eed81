import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HsmCluster } from './cluster.js'
import { HsmError } from './errors.js'
import { KEK_ID } from './key-templates.js'
import {
  attribute,
  captureLogger,
  createSofthsmEnv,
  findAll,
  withToken,
  type SofthsmTestEnv,
  type TestToken,
} from '../../test/helpers/softhsm-env.js'
import { p256Spki } from './spki.js'

let env: SofthsmTestEnv
let cluster: HsmCluster
const log = captureLogger()

function tokenAt(index: number): TestToken {
  const token = env.tokens[index]
  if (token === undefined) throw new Error(`no token ${index}`)
  return token
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest()
}

function spkiKey(spki: Buffer): KeyObject {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' })
}

async function caught(promise: Promise<unknown>): Promise<HsmError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof HsmError) return error
    throw error
  }
  throw new Error('expected an HsmError')
}

function keyTemplate(id: Buffer, objectClass: number): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_CLASS, value: objectClass },
  ]
}

beforeAll(async () => {
  env = await createSofthsmEnv(['hsmgate-a', 'hsmgate-b'])
  cluster = await HsmCluster.open([env.member('hsm-a', 0), env.member('hsm-b', 1)], {
    logger: log.logger,
    environment: { SOFTHSM2_CONF: env.conf },
    recheckIntervalMs: 60_000,
  })
  const soPins = { 'hsm-a': tokenAt(0).soPin, 'hsm-b': tokenAt(1).soPin }
  await cluster.provisionClusterKek({ soPins })
})

afterAll(async () => {
  await cluster?.close()
  env?.cleanup()
})

describe('cluster KEK', () => {
  it('is a trusted private token key on both members', async () => {
    for (const token of env.tokens) {
      await withToken(token, (pkcs11, session) => {
        const keks = findAll(pkcs11, session, keyTemplate(KEK_ID, pkcs11js.CKO_SECRET_KEY))
        expect(keks).toHaveLength(1)
        const kek = keks[0] as Buffer
        expect(attribute(pkcs11, session, kek, pkcs11js.CKA_TRUSTED)[0]).toBe(1)
        expect(attribute(pkcs11, session, kek, pkcs11js.CKA_PRIVATE)[0]).toBe(1)
        expect(attribute(pkcs11, session, kek, pkcs11js.CKA_TOKEN)[0]).toBe(1)
        expect(attribute(pkcs11, session, kek, pkcs11js.CKA_EXTRACTABLE)[0]).toBe(0)
        expect(attribute(pkcs11, session, kek, pkcs11js.CKA_SENSITIVE)[0]).toBe(1)
      })
    }
  })

  it('provisioning again is a no-op', async () => {
    await cluster.provisionClusterKek()
    await withToken(tokenAt(0), (pkcs11, session) => {
      expect(findAll(pkcs11, session, keyTemplate(KEK_ID, pkcs11js.CKO_SECRET_KEY))).toHaveLength(1)
    })
  })
})

describe('EC P-256 keys', () => {
  const ref = { id: randomBytes(16), label: 'test:ec:v1' }
  let spki: Buffer

  beforeAll(async () => {
    spki = await cluster.generateEcKeyPair(ref, 'P-256')
  })

  it('exist on both members under the same CKA_ID and label', async () => {
    for (const token of env.tokens) {
      await withToken(token, (pkcs11, session) => {
        const [privateKey] = findAll(pkcs11, session, keyTemplate(ref.id, pkcs11js.CKO_PRIVATE_KEY))
        const [publicKey] = findAll(pkcs11, session, keyTemplate(ref.id, pkcs11js.CKO_PUBLIC_KEY))
        expect(privateKey).toBeDefined()
        expect(publicKey).toBeDefined()
        const key = privateKey as Buffer
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_LABEL).toString()).toBe(ref.label)
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_SENSITIVE)[0]).toBe(1)
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_TOKEN)[0]).toBe(1)
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_PRIVATE)[0]).toBe(1)
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_SIGN)[0]).toBe(1)
        expect(attribute(pkcs11, session, key, pkcs11js.CKA_WRAP_WITH_TRUSTED)[0]).toBe(1)
      })
    }
  })

  it('publicKeySpki matches the generated key', async () => {
    expect((await cluster.publicKeySpki(ref.id)).equals(spki)).toBe(true)
    expect(spkiKey(spki).asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
  })

  it('cluster signatures verify with node:crypto', async () => {
    for (let i = 0; i < 4; i += 1) {
      const data = randomBytes(100)
      const signature = await cluster.signEcdsa(ref.id, sha256(data))
      expect(signature).toHaveLength(64)
      const key = { key: spkiKey(spki), dsaEncoding: 'ieee-p1363' as const }
      expect(verify('sha256', data, key, signature)).toBe(true)
    }
  })

  it('member B alone signs for member A public key', async () => {
    // Signs on token B and reads the public key from token A directly, outside the cluster,
    // so the check proves that B has a copy of the private key that was generated on A.
    const data = Buffer.from('replication proof')
    const signature = await withToken(tokenAt(1), async (pkcs11, session) => {
      const [key] = findAll(pkcs11, session, keyTemplate(ref.id, pkcs11js.CKO_PRIVATE_KEY))
      pkcs11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key as Buffer)
      return pkcs11.C_SignAsync(session, sha256(data), Buffer.alloc(64))
    })
    const spkiFromA = await withToken(tokenAt(0), (pkcs11, session) => {
      const [key] = findAll(pkcs11, session, keyTemplate(ref.id, pkcs11js.CKO_PUBLIC_KEY))
      const params = attribute(pkcs11, session, key as Buffer, pkcs11js.CKA_EC_PARAMS)
      return p256Spki(params, attribute(pkcs11, session, key as Buffer, pkcs11js.CKA_EC_POINT))
    })
    const key = { key: spkiKey(spkiFromA), dsaEncoding: 'ieee-p1363' as const }
    expect(verify('sha256', data, key, signature)).toBe(true)
  })

  it('verifyEcdsa accepts good and rejects bad signatures', async () => {
    const digest = sha256(Buffer.from('message'))
    const signature = await cluster.signEcdsa(ref.id, digest)
    expect(await cluster.verifyEcdsa(ref.id, digest, signature)).toBe(true)
    expect(await cluster.verifyEcdsa(ref.id, sha256(Buffer.from('other')), signature)).toBe(false)
    expect(await cluster.verifyEcdsa(ref.id, digest, signature.subarray(0, 10))).toBe(false)
  })

  it('rejects a reused CKA_ID', async () => {
    const error = await caught(cluster.generateEcKeyPair(ref, 'P-256'))
    expect(error.code).toBe('hsm_operation_failed')
    expect(error.message).toContain('already exists')
  })

  it('50 parallel signs succeed with pool_size 2', async () => {
    const messages = Array.from({ length: 50 }, (_, i) => Buffer.from(`message ${i}`))
    const signatures = await Promise.all(
      messages.map((data) => cluster.signEcdsa(ref.id, sha256(data))),
    )
    const key = { key: spkiKey(spki), dsaEncoding: 'ieee-p1363' as const }
    const verified = signatures.map((signature, i) =>
      verify('sha256', messages[i] as Buffer, key, signature),
    )
    expect(verified.filter(Boolean)).toHaveLength(50)
    expect(cluster.status().map((member) => member.state)).toEqual(['healthy', 'healthy'])
  })
})

describe('AES-256-GCM keys', () => {
  const ref = { id: randomBytes(16), label: 'test:aes:v1' }
  const iv = randomBytes(12)
  const aad = Buffer.from('context: tenant=1')
  const plaintext = Buffer.from('a secret message for the HSM')

  beforeAll(async () => {
    await cluster.generateAesKey(ref, 256)
  })

  it('round-trips through the cluster', async () => {
    for (let i = 0; i < 4; i += 1) {
      const ciphertext = await cluster.encryptAesGcm(ref.id, { iv, aad, plaintext })
      expect(ciphertext).toHaveLength(plaintext.length + 16)
      const decrypted = await cluster.decryptAesGcm(ref.id, { iv, aad, ciphertext })
      expect(decrypted.equals(plaintext)).toBe(true)
    }
  })

  it('exists on both members with the same CKA_ID', async () => {
    for (const token of env.tokens) {
      await withToken(token, (pkcs11, session) => {
        const keys = findAll(pkcs11, session, keyTemplate(ref.id, pkcs11js.CKO_SECRET_KEY))
        expect(keys).toHaveLength(1)
        expect(attribute(pkcs11, session, keys[0] as Buffer, pkcs11js.CKA_SENSITIVE)[0]).toBe(1)
      })
    }
  })

  it('tampered ciphertext gives hsm_decrypt_failed', async () => {
    const ciphertext = await cluster.encryptAesGcm(ref.id, { iv, aad, plaintext })
    ciphertext[0] = (ciphertext[0] ?? 0) ^ 1
    const error = await caught(cluster.decryptAesGcm(ref.id, { iv, aad, ciphertext }))
    expect(error.code).toBe('hsm_decrypt_failed')
  })

  it('different AAD gives hsm_decrypt_failed', async () => {
    const ciphertext = await cluster.encryptAesGcm(ref.id, { iv, aad, plaintext })
    const otherAad = Buffer.from('context: tenant=2')
    const error = await caught(cluster.decryptAesGcm(ref.id, { iv, aad: otherAad, ciphertext }))
    expect(error.code).toBe('hsm_decrypt_failed')
  })

  it('decrypt failures leave members healthy', () => {
    expect(cluster.status().map((member) => member.state)).toEqual(['healthy', 'healthy'])
    expect(log.messages().some((message) => message.includes('healthy -> failed'))).toBe(false)
  })
})

describe('other operations', () => {
  it('random returns the requested length', async () => {
    for (const length of [1, 32, 1000]) {
      expect(await cluster.random(length)).toHaveLength(length)
    }
    expect((await cluster.random(32)).equals(await cluster.random(32))).toBe(false)
  })

  it('random rejects invalid lengths', async () => {
    expect((await caught(cluster.random(0))).code).toBe('hsm_operation_failed')
    expect((await caught(cluster.random(70_000))).code).toBe('hsm_operation_failed')
  })

  it('hasKey finds only existing keys', async () => {
    const id = randomBytes(16)
    expect(await cluster.hasKey(id)).toBe(false)
    await cluster.generateAesKey({ id, label: 'test:has-key' }, 256)
    expect(await cluster.hasKey(id)).toBe(true)
  })

  it('unknown key gives hsm_key_not_found', async () => {
    const error = await caught(cluster.signEcdsa(randomBytes(16), sha256(Buffer.from('x'))))
    expect(error.code).toBe('hsm_key_not_found')
  })

  it('status lists both members', () => {
    const status = cluster.status()
    expect(status.map((member) => member.name)).toEqual(['hsm-a', 'hsm-b'])
    for (const member of status) {
      expect(member.sessions).toBe(2)
      expect(member.inUse).toBe(0)
    }
  })
})
