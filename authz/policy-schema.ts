import { KEYED_OPERATIONS, KEYLESS_OPERATIONS } from './operation.js'

/** Cedar namespace of every hsmgate entity type and action. */
export const NAMESPACE = 'Hsmgate'

/** Entity type names as policies and requests spell them. */
export const ENTITY = {
  application: `${NAMESPACE}::Application`,
  service: `${NAMESPACE}::Service`,
  key: `${NAMESPACE}::Key`,
  gateway: `${NAMESPACE}::Gateway`,
  encryptionContext: `${NAMESPACE}::EncryptionContext`,
  action: `${NAMESPACE}::Action`,
} as const

/** Action groups, so that a policy can name every key operation at once. */
export const KEY_OPERATIONS_GROUP = 'key-operations'
export const GATEWAY_OPERATIONS_GROUP = 'gateway-operations'
/** Approval actions form their own group, so a grant on key operations never covers them. */
export const APPROVAL_OPERATIONS_GROUP = 'approval-operations'

/**
 * Actions declared for certificate management that no route maps to yet. Enrollment and renewal
 * are the route-table operations `enroll` and `renew`.
 */
export const CERTIFICATE_ACTIONS = ['certificate-revoke'] as const

/** Actions declared for dual control; no route maps to them yet. */
export const APPROVAL_ACTIONS = ['approval-request', 'approval-approve', 'approval-deny'] as const

/**
 * Context every action receives. Times are UTC. `algorithm` is present only when the JSON body
 * names one. `encryptionContext` is an entity whose tags are the body's `context` entries.
 */
const CONTEXT_TYPE = `type RequestContext = {
    sourceAddress: String,
    sourceMatchesHost: Bool,
    certificate: Certificate,
    time: Clock,
    algorithm?: String,
    encryptionContext: EncryptionContext,
    hasEncryptionContext: Bool,
    requestBytes: Long,
    approvalGranted: Bool,
  };`

const ENTITIES = `entity Application = {
    name: String,
    team: String,
    hosts: Set<String>,
    addresses: Set<String>,
    suspended: Bool,
  };
  entity Service = { name: String };
  entity Key = {
    name: String,
    type: String,
    owner: String,
    tags: Set<String>,
    classification: String,
    namespace: String,
  };
  entity Gateway;
  entity EncryptionContext tags String;
  type Certificate = {
    issuer: String,
    serial: String,
    lifetimeSeconds: Long,
    ageSeconds: Long,
    keyProtection: String,
  };
  type Clock = { hour: Long, minute: Long, weekday: String };`

function action(name: string, group: string, principals: string, resource: string): string {
  return (
    `  action ${JSON.stringify(name)} in [${JSON.stringify(group)}] appliesTo ` +
    `{ principal: [${principals}], resource: [${resource}], context: RequestContext };`
  )
}

/**
 * Renders the hsmgate Cedar schema. The operation actions come from the route table, so a new
 * operation gets its action without an edit here. Key operations act on a Key. Key-less
 * operations, certificate and approval actions act on the Gateway (approvals on a Key).
 */
export function renderSchema(): string {
  const lines = [
    `namespace ${NAMESPACE} {`,
    `  ${ENTITIES}`,
    `  ${CONTEXT_TYPE}`,
    `  action ${JSON.stringify(KEY_OPERATIONS_GROUP)};`,
    `  action ${JSON.stringify(GATEWAY_OPERATIONS_GROUP)};`,
    `  action ${JSON.stringify(APPROVAL_OPERATIONS_GROUP)};`,
    ...KEYED_OPERATIONS.map((op) => action(op, KEY_OPERATIONS_GROUP, 'Application', 'Key')),
    ...KEYLESS_OPERATIONS.map((op) =>
      action(op, GATEWAY_OPERATIONS_GROUP, 'Application, Service', 'Gateway'),
    ),
    ...CERTIFICATE_ACTIONS.map((op) =>
      action(op, GATEWAY_OPERATIONS_GROUP, 'Application', 'Gateway'),
    ),
    ...APPROVAL_ACTIONS.map((op) => action(op, APPROVAL_OPERATIONS_GROUP, 'Application', 'Key')),
    '}',
    '',
  ]
  return lines.join('\n')
}

/** Every action name the schema declares, groups excluded. */
export function actionNames(): string[] {
  return [...KEYED_OPERATIONS, ...KEYLESS_OPERATIONS, ...CERTIFICATE_ACTIONS, ...APPROVAL_ACTIONS]
}
