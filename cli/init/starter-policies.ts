import { KEY_OPERATIONS_GROUP } from '../../authz/policy-schema.js'

/**
 * The starter policy files `hsmgate init` writes, by file name. They reproduce the starter
 * behaviour: each application may use its own keys for every key operation, list keys and get
 * random bytes. The readiness probe may only call health, and a suspended application is denied
 * everything. Anything else is denied by default.
 */
export function starterPolicies(): Record<string, string> {
  return {
    'applications.cedar': `// Each application may use the keys it owns, for every key operation.
@id("own-keys")
@reason("an application may use only the keys it owns")
permit (
  principal is Hsmgate::Application,
  action in Hsmgate::Action::"${KEY_OPERATIONS_GROUP}",
  resource is Hsmgate::Key
)
when { resource.owner == principal.name };

// Every application may list key metadata and get random bytes from the HSM.
@id("list-and-random")
@reason("applications may list keys and get random bytes")
permit (
  principal is Hsmgate::Application,
  action in [Hsmgate::Action::"list-keys", Hsmgate::Action::"random"],
  resource
);
`,
    'probe.cedar': `// The readiness probe of 'hsmgate up' may only ask for HSM health.
@id("probe-health")
@reason("the readiness probe may read HSM health")
permit (
  principal == Hsmgate::Service::"probe",
  action == Hsmgate::Action::"health",
  resource
);
`,
    'suspension.cedar': `// A suspended application is denied everything; forbid overrides every permit.
@id("suspended-application")
@reason("the application is suspended")
forbid (principal is Hsmgate::Application, action, resource)
when { principal.suspended };
`,
  }
}
