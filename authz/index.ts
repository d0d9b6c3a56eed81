// Public surface of the authz package.
export {
  createCheckHandler,
  newDecisionId,
  DECISION_HEADER,
  DECISION_ID_HEADER,
  PRINCIPAL_HEADER,
  RESERVED_HEADER_PREFIX,
  type CheckHandlerOptions,
  type CheckRequest,
  type CheckResponse,
  type HeaderValueOption,
} from './check.js'
export {
  bodyDigest,
  loadDecisionSecret,
  signDecision,
  verifyDecision,
  DecisionSecretError,
  DECISION_VERSION,
  MAX_CLOCK_SKEW_MS,
  MIN_SECRET_BYTES,
  type DecisionClaims,
  type DecisionRequest,
  type DecisionVerification,
} from './decision-header.js'
export {
  identityFromCertificate,
  IdentityError,
  type IdentityErrorCode,
  type PeerIdentity,
} from './identity.js'
export {
  describeOperation,
  resolveOperation,
  KEYED_OPERATIONS,
  KEYLESS_OPERATIONS,
  OPERATIONS,
  type Operation,
  type OperationName,
  type RouteError,
  type RouteResult,
} from './operation.js'
export { loadAuthzProtos, protoRoot, type AuthzProtos } from './protos.js'
export {
  loadPolicyDir,
  policyFiles,
  PolicyError,
  schemaText,
  type LoadedPolicy,
  type PolicySource,
} from './policy-load.js'
export {
  PolicyEngine,
  DEFAULT_DENY_ID,
  DEFAULT_DENY_REASON,
  type PolicyDecision,
} from './policy-engine.js'
export { loadPolicyEngine, watchPolicies, type PolicyWatcher } from './policy-watch.js'
export { renderSchema, actionNames, ENTITY, NAMESPACE } from './policy-schema.js'
export type { ContextFacts, PolicyPrincipal, PolicyRequest } from './policy-request.js'
export { KEY_PROTECTION_OID, encodeKeyProtection, type KeyProtection } from './key-protection.js'
export { authzAuditNode, storeAuditor, type DecisionAuditor } from './decision-audit.js'
export {
  startAuthzServer,
  AUTHORIZATION_SERVICE_NAME,
  SocketInUseError,
  type AuthzServer,
  type AuthzServerOptions,
} from './server.js'
