export type {
  Application,
  EnrollmentToken,
  IssuedCertificate,
  KeyProtection,
  SerialSighting,
  TokenRedemption,
  AuditEntry,
  Classification,
  AuditRecord,
  AuditCheckpoint,
  AuditHead,
  KeyState,
  KeyType,
  KeyVersion,
  Store,
} from './store.js'
export { KEY_TYPES } from './store.js'
export { SqliteStore } from './sqlite-store.js'
export type {
  ActivationChallenge,
  AttestationKey,
  ChallengeRedemption,
  NonceLimits,
  NoncePut,
  NonceRedemption,
  TpmRecords,
} from './tpm-sqlite.js'
export { chainHash, GENESIS_HASH } from './audit-chain.js'
export { AuditBatcher } from './audit-batcher.js'
