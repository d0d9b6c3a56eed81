import { z } from 'zod'

const durationPattern = /^\d+(ms|s|m|h|d)$/

const port = z.number().int().min(1).max(65535)
const relativeOrAbsolutePath = z.string().min(1)

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
      })
      .strict(),
    envoy: z
      .object({
        admin_port: port,
        max_request_bytes: z
          .number()
          .int()
          .min(1024)
          .max(16 * 1024 * 1024),
        max_request_headers_kb: z.number().int().min(8).max(96).default(32),
        request_timeout: z.string().regex(durationPattern).default('30s'),
      })
      .strict(),
    tls: z
      .object({
        server_cert: relativeOrAbsolutePath,
        server_key: relativeOrAbsolutePath,
        trust_bundle: relativeOrAbsolutePath,
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
      })
      .strict(),
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
    store: z.object({ sqlite: relativeOrAbsolutePath }).strict(),
    pki: z
      .object({
        ca_cert: relativeOrAbsolutePath,
        ca_key_id: z.string().regex(/^[0-9a-f]{2,64}$/, 'the CA key CKA_ID in lowercase hex'),
      })
      .strict(),
    probe: z
      .object({
        cert: relativeOrAbsolutePath,
        key: relativeOrAbsolutePath,
      })
      .strict(),
  })
  .strict()

export type GatewayConfig = z.infer<typeof configSchema>
