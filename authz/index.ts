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
  keyMatches,
  loadRules,
  parseRules,
  watchRules,
  RuleSet,
  RulesError,
  type Rule,
  type RuleDecision,
  type RulesWatcher,
} from './rules.js'
export {
  startAuthzServer,
  AUTHORIZATION_SERVICE_NAME,
  SocketInUseError,
  type AuthzServer,
  type AuthzServerOptions,
} from './server.js'
