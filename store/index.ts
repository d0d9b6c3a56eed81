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
  ActivationChallenge,
  AttestationKey,
  ChallengeRedemption,
  NonceLimits,
  NoncePut,
  NonceRedemption,
  TpmRecords,
  Approval,
  ApprovalHold,
  ApprovalStatus,
  ApprovalVote,
  ControlRecords,
  GrantMatch,
} from './store.js'
export { KEY_TYPES } from './store.js'
export { SqliteStore } from './sqlite-store.js'
export { PostgresStore, MigrationError } from './postgres/index.js'
export { openStore } from './open-store.js'
export { StoreUnavailableError, type StoreUnavailableCause } from './store-unavailable.js'
export { chainHash, GENESIS_HASH } from './audit-chain.js'
export { AuditBatcher } from './audit-batcher.js'
