import { KEY_OPERATIONS_GROUP } from '../../authz/policy-schema.js'

/**
 * The starter policy files `hsmgate init` writes, by file name. They reproduce the starter
 * behaviour: each application may use its own keys for every key operation, create keys only
 * in its own namespace (`<application>-...`), list its keys and get random bytes. The readiness
 * probe may only call health, and a suspended application is denied everything. Enrollment with a token and renewal from the certificate's own host are allowed.
 * Anything else is denied by default. docs/policy-guide.md shows a policy that demands host
 * binding for every request (source-address.cedar).
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

// Key names belong to applications: a key's name starts with its owner's name and a hyphen,
// so only payments may create payments-signing. The backend enforces the same rule.
@id("key-namespace")
@reason("an application may create keys only in its own namespace, named <application>-...")
forbid (
  principal is Hsmgate::Application,
  action == Hsmgate::Action::"create-key",
  resource is Hsmgate::Key
)
unless { resource.namespace == principal.name };

// Every application may list its own keys' metadata and get random bytes from the HSM.
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
    'certificates.cedar': `// An agent with an enrollment token may enroll; authz maps only POST /v1/enroll on the
// enrollment listener to this action, and the backend checks the token.
@id("enroll-with-token")
@reason("enrollment is authorized by the single-use token the backend checks")
permit (
  principal == Hsmgate::Service::"enrollment",
  action == Hsmgate::Action::"enroll",
  resource
);

// The CRL is public: anyone who reaches the gateway may fetch it, as relying parties must.
@id("crl-public")
@reason("the certificate revocation list is public")
permit (
  principal,
  action == Hsmgate::Action::"crl",
  resource
);

// Each application may renew its own client certificate from the host it was issued for.
@id("renew-own-certificate")
@reason("an application may renew its certificate from its own host")
permit (
  principal is Hsmgate::Application,
  action == Hsmgate::Action::"renew",
  resource
)
when { context.sourceMatchesHost };
`,
    'suspension.cedar': `// A suspended application is denied everything; forbid overrides every permit.
@id("suspended-application")
@reason("the application is suspended")
forbid (principal is Hsmgate::Application, action, resource)
when { principal.suspended };
`,
  }
}
