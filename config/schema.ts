import { z } from 'zod'
import { checkControlReferences, controlsFields } from '../authz/controls-schema.js'
import { storeSchema } from './store-schema.js'

const durationPattern = /^\d+(ms|s|m|h|d)$/

const port = z.number().int().min(1).max(65535)

/** An IPv4 or IPv6 network in CIDR notation, such as 10.0.0.0/8. */
const cidr = z.cidrv4().or(z.cidrv6())
const relativeOrAbsolutePath = z.string().min(1)

const replacedByIssuedServingCert = z
  .unknown()
  .optional()
  .refine((value) => value === undefined, {
    message:
      'the serving certificate is issued by the HSM CA at start and renewed automatically; ' +
      'remove tls.server_cert and tls.server_key (set tls.server_cert_lifetime instead)',
  })

/** One HSM cluster member: a PKCS#11 module, a token in it, and where its user PIN comes from. */
export const memberSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and hyphens'),
    module: relativeOrAbsolutePath,
    token_label: z.string().min(1).max(32).optional(),
    token_serial: z.string().min(1).max(16).optional(),
    pin_file: relativeOrAbsolutePath.optional(),
    pin_env: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name')
      .optional(),
    pool_size: z.number().int().min(1).max(64).default(4),
    operation_timeout_ms: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict()
  .refine((m) => (m.token_label === undefined) !== (m.token_serial === undefined), {
    message: 'set exactly one of token_label and token_serial',
  })
  .refine((m) => (m.pin_file === undefined) !== (m.pin_env === undefined), {
    message: 'set exactly one of pin_file and pin_env',
  })

export type MemberConfig = z.infer<typeof memberSchema>

export const configSchema = z
  .object({
    node_id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and hyphens'),
    trust_domain: z.string().regex(/^[a-z0-9.-]+$/, 'a DNS-style name such as hsmgate.demo'),
    runtime_dir: relativeOrAbsolutePath,
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    listen: z
      .object({
        address: z.ipv4().or(z.ipv6()),
        port,
        /**
         * TCP port of the enrollment listener on the same address: server TLS only, and its only
         * route is POST /v1/enroll. Absent: no enrollment listener.
         */
        enroll_port: port.optional(),
      })
      .strict(),
    envoy: z
      .object({
        /**
         * TCP port on 127.0.0.1 of a listener that serves only GET /stats/prometheus and GET
         * /ready from Envoy's admin interface, which itself listens on the Unix socket
         * runtime_dir/envoy-admin.sock. Absent: no such listener.
         */
        stats_port: port.optional(),
        /** Earlier name of stats_port. It loads as stats_port, and the CLI warns about it. */
        admin_port: port.optional(),
        max_request_bytes: z
          .number()
          .int()
          .min(1024)
          .max(16 * 1024 * 1024),
        max_request_headers_kb: z.number().int().min(8).max(96).default(32),
        request_timeout: z.string().regex(durationPattern).default('30s'),
      })
      .strict()
      .refine((envoy) => envoy.admin_port === undefined || envoy.stats_port === undefined, {
        path: ['admin_port'],
        message: 'earlier name of envoy.stats_port, which is also set; remove envoy.admin_port',
      })
      .transform((envoy) => ({ ...envoy, stats_port: envoy.stats_port ?? envoy.admin_port })),
    tls: z
      .object({
        /** Files of earlier versions; the backend now issues the serving certificate itself. */
        server_cert: replacedByIssuedServingCert,
        server_key: replacedByIssuedServingCert,
        trust_bundle: relativeOrAbsolutePath,
        /** Lifetime of the serving certificate; it is renewed after two thirds of it. */
        server_cert_lifetime: z.string().regex(durationPattern).default('24h'),
        /** DNS names of the serving certificate, besides the listen address. */
        server_dns_names: z.array(z.string().min(1)).default(['localhost']),
      })
      .strict(),
    authz: z
      .object({
        /** Directory of Cedar policy files (*.cedar). Default: policies next to hsmgate.yaml. */
        policies: relativeOrAbsolutePath.optional(),
        /** The YAML rules file of earlier versions; accepted only to explain the migration. */
        rules: z
          .unknown()
          .optional()
          .refine((value) => value === undefined, {
            message:
              'the YAML rules engine is replaced by Cedar policies; remove authz.rules and ' +
              "set authz.policies to a directory of .cedar files ('hsmgate init' writes policies/)",
          }),
        decision_secret: relativeOrAbsolutePath,
        /**
         * CIDRs of proxies in front of the gateway. When the TCP peer is one of them, the client
         * address is the rightmost x-forwarded-for entry outside these ranges.
         */
        trusted_proxies: z.array(cidr).max(64).default([]),
        clone_detection: z
          .object({
            /** Suspend the application when an older certificate is used after a newer one. */
            suspend: z.boolean().default(false),
          })
          .strict()
          .default({ suspend: false }),
        ...controlsFields,
      })
      .strict()
      .superRefine(checkControlReferences),
    backend: z
      .object({
        decision_secret: relativeOrAbsolutePath,
        // Long enough to cover queueing under load; the backend's replay cache stops reuse.
        decision_max_age_ms: z.number().int().min(100).max(60_000).default(30_000),
      })
      .strict(),
    hsm: z
      .object({
        environment: z.record(z.string(), z.string()).default({}),
        members: z.array(memberSchema).min(1),
      })
      .strict(),
    store: storeSchema,
    /** Signed audit checkpoints; see docs/audit.md. Absent: the defaults below. */
    audit: z
      .object({
        /** A writer's chain gets a checkpoint once it has this many records past the last one. */
        checkpoint_records: z.number().int().min(1).max(1_000_000).default(1000),
        /** ... or once this long has passed since its last checkpoint and it has new records. */
        checkpoint_interval: z.string().regex(durationPattern).default('60s'),
        /** PEM file of the audit public keys that `hsmgate audit verify` trusts. */
        public_keys: relativeOrAbsolutePath.default('pki/audit-keys.pem'),
      })
      .strict()
      .optional(),
    pki: z
      .object({
        ca_cert: relativeOrAbsolutePath,
        ca_key_id: z.string().regex(/^[0-9a-f]{2,64}$/, 'the CA key CKA_ID in lowercase hex'),
        /** Certificates above the issuing CA up to the root, PEM; set by 'hsmgate ca import'. */
        ca_chain: relativeOrAbsolutePath.optional(),
        /** URL in the CRL distribution point of issued certificates. */
        crl_url: z.url({ protocol: /^https?$/ }).optional(),
        /** How long a CRL is valid; a new one is published after half of it. */
        crl_lifetime: z.string().regex(durationPattern).default('24h'),
        /** Lifetime of client certificates that enrollment and renewal issue, such as '1h'. */
        client_lifetime: z.string().regex(durationPattern).default('1h'),
        /**
         * What makes a TPM attestation key trusted: 'registered-ak' (an operator registered it
         * for the host with 'hsmgate tpm register-ak'), 'ek-certificate' (the TPM's EK
         * certificate chains to tpm_manufacturer_cas and credential activation succeeds), or
         * 'either'. Absent: 'registered-ak'.
         */
        tpm_trust: z.enum(['registered-ak', 'ek-certificate', 'either']).optional(),
        /** PEM bundle of TPM manufacturer root and intermediate CAs for EK certificates. */
        tpm_manufacturer_cas: relativeOrAbsolutePath.optional(),
        /** Maximum unexpired, unused TPM attestation nonces per client address. Absent: 16. */
        tpm_nonces_per_source: z.number().int().min(1).max(1000).optional(),
        /** Maximum unexpired, unused TPM attestation nonces of all addresses. Absent: 1024. */
        tpm_nonces_total: z.number().int().min(1).max(1_000_000).optional(),
      })
      .strict()
      .refine(
        (pki) =>
          (pki.tpm_trust ?? 'registered-ak') === 'registered-ak' ||
          pki.tpm_manufacturer_cas !== undefined,
        {
          path: ['tpm_manufacturer_cas'],
          message:
            "required when pki.tpm_trust is 'ek-certificate' or 'either'; set it to a PEM " +
            'bundle of the TPM manufacturer CAs that issue EK certificates',
        },
      ),
    probe: z
      .object({
        cert: relativeOrAbsolutePath,
        key: relativeOrAbsolutePath,
      })
      .strict(),
    /** Prometheus scrape endpoints on 127.0.0.1; a process without a port serves none. */
    metrics: z
      .object({ authz_port: port.optional(), backend_port: port.optional() })
      .strict()
      .default({}),
    /**
     * Group (name or numeric id) given to the authz and backend sockets with mode 0660, so that
     * Envoy can run as another user in that group. Absent: mode 0600, Envoy runs as their user.
     */
    socket_group: z
      .string()
      .regex(/^([a-z_][a-z0-9_-]{0,31}|\d{1,10})$/, 'a group name or a numeric group id')
      .optional(),
  })
  .strict()

export type GatewayConfig = z.infer<typeof configSchema>
