import type { HttpBindings } from '@hono/node-server'
import type { Logger } from '../log/logger.js'
import type { AuditBatcher, Store } from '../store/index.js'
import type { HsmCluster } from './hsm/index.js'
import type { KeyLifecycle } from './keys/key-lifecycle.js'
import type { KeyRegistry } from './keys/key-registry.js'
import type { ClientCertificates } from './pki/client-certificates.js'
import type { ApprovalsDeps } from './routes/approvals.js'
import type { TpmTrust } from './pki/tpm/tpm-trust.js'

/** Facts of a request for its audit record, filled in by the route that serves it. */
export interface AuditFacts {
  operation: string
  key: string | null
  keyVersion: number | null
  errorCode: string | null
}

/** Per-request values the middleware sets before a route runs. */
export interface RequestVariables {
  principal: string
  decisionId: string
  /** Client certificate serial (lowercase hex) that authz bound into the decision, or null. */
  certSerial: string | null
  /** Client address that authz bound into the decision, or null. */
  sourceAddress: string | null
  body: Uint8Array
  audit: AuditFacts
}

export type BackendEnv = { Bindings: HttpBindings; Variables: RequestVariables }

/** Long-lived dependencies of the backend's routes. */
export interface BackendDeps {
  nodeId: string
  cluster: HsmCluster
  store: Store
  /** Writes audit records in group commits; each append resolves once its record is durable. */
  audit: AuditBatcher
  keys: KeyRegistry
  lifecycle: KeyLifecycle
  decisionSecret: Buffer
  decisionMaxAgeMs: number
  maxBodyBytes: number
  logger: Logger
  /** The published CRL in PEM, served at GET /v1/crl. Without it that route responds 503. */
  crlFile?: string
  /** Issues client certificates for enrollment and renewal. Without it those routes respond 503. */
  clientCertificates?: ClientCertificates
  /** Dual control state and rules for the approvals API. Without it those routes respond 503. */
  approvals?: ApprovalsDeps
  /** TPM attestation trust path and nonce limits. Without it: the defaults of the config schema. */
  tpm?: TpmTrust
}
