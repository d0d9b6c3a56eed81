import pkcs11js from 'pkcs11js'
import { randomBytes } from 'node:crypto'
import { KEY_KINDS, secretTemplate } from '../../crypto-backend/hsm/key-kinds.js'
import type { KeyType } from '../../store/index.js'
import type { BackendHarness } from './backend-harness.js'
import { withToken } from './softhsm-env.js'

/**
 * Puts a secret key with a value the test knows on both tokens and registers it, so that
 * results of the gateway can be recomputed with node:crypto. Keys made through the API never
 * leave the HSM, so they cannot be cross-checked that way.
 */
export async function importKnownSecret(
  harness: BackendHarness,
  name: string,
  type: KeyType,
  value: Buffer,
): Promise<void> {
  const id = randomBytes(16)
  const label = `hsmgate:${name}:v1`
  const template = [
    ...secretTemplate(KEY_KINDS[type], { id, label }, false),
    { type: pkcs11js.CKA_VALUE, value },
  ]
  for (const token of harness.env.tokens) {
    await withToken(token, (pkcs11, session) => pkcs11.C_CreateObject(session, template))
  }
  await harness.store.putKeyVersion({
    name,
    version: 1,
    type,
    ckaId: id.toString('hex'),
    label,
    state: 'enabled',
    owner: 'payments',
    tags: ['known-value'],
    classification: 'internal',
    createdAt: new Date().toISOString(),
  })
}
