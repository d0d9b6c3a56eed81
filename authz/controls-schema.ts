import { z } from 'zod'
import { OPERATIONS } from './operation.js'

// Configuration of the runtime controls in hsmgate.yaml under authz: quotas, anomaly rules,
// alerts and dual control. Cross-field checks run here, so every error names its field.

const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 30s, 5m or 1h')
const appName = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'an application name')
const keyName = z.string().regex(/^[a-z0-9-]{1,64}$/, 'a key name')
const personName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a person name such as alice')
const operation = z.enum(OPERATIONS)

/** Operation name that a quota extension approval carries; it is no API route. */
export const QUOTA_EXTENSION = 'quota-extension'

/** One quota: at most `limit` allowed requests per sliding `window`. */
export const quotaSchema = z
  .object({
    /** Name used in deny messages and by quota extension approvals. Default: quota-N. */
    name: z
      .string()
      .regex(/^[a-z0-9-]{1,64}$/, 'lowercase letters, digits and hyphens')
      .optional(),
    app: appName,
    /** Counts only requests on this key; absent: every key and key-less operation. */
    key: keyName.optional(),
    /** Counts only this operation; absent: every operation. */
    operation: operation.optional(),
    limit: z.number().int().min(1).max(100_000),
    window: duration,
  })
  .strict()

export type QuotaConfig = z.infer<typeof quotaSchema>

const actions = z
  .array(z.enum(['alert', 'suspend', 'require_approval']))
  .min(1)
  .default(['alert'])

const ruleBase = {
  action: actions,
  /** Name in alerts and logs. Default: the kind. */
  name: z
    .string()
    .regex(/^[a-z0-9_-]{1,64}$/, 'lowercase letters, digits, hyphens and underscores')
    .optional(),
  /** Group whose approval a require_approval action requests. */
  approval_group: z.string().min(1).optional(),
  /** Number of approvals a require_approval action requests. Default: 1. */
  approvals_required: z.number().int().default(1),
}

/** One anomaly rule: the kind of unusual use it reports and the actions it takes. */
export const anomalyRuleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('new_source_address'), ...ruleBase }).strict(),
  z.object({ kind: z.literal('first_operation'), ...ruleBase }).strict(),
  z.object({ kind: z.literal('first_key'), ...ruleBase }).strict(),
  z.object({ kind: z.literal('serial_multiple_addresses'), ...ruleBase }).strict(),
  z
    .object({
      kind: z.literal('rate'),
      ...ruleBase,
      /** Fires when the requests in the current bucket exceed factor times the baseline. */
      factor: z.number().min(1.5).max(1000),
      /** Length of one rate bucket. Default: 1m. */
      bucket: duration.default('1m'),
      /** Weight of the newest completed bucket in the moving average, 0 < alpha <= 1. */
      alpha: z.number().gt(0).max(1).default(0.2),
      /** Completed buckets observed before the rule can fire. Default: 10. */
      warmup_buckets: z.number().int().min(1).max(10_000).default(10),
      /** Requests in the current bucket below which the rule never fires. Default: 10. */
      min_requests: z.number().int().min(1).max(1_000_000).default(10),
    })
    .strict(),
  z
    .object({
      kind: z.literal('outside_hours'),
      ...ruleBase,
      /** First allowed hour, 0-23, UTC. */
      from_hour: z.number().int().min(0).max(23),
      /** Hour at which use stops being allowed, 1-24, UTC; must be after from_hour. */
      to_hour: z.number().int().min(1).max(24),
      /** Allowed weekdays. Default: Monday to Friday. */
      weekdays: z
        .array(
          z.enum(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']),
        )
        .min(1)
        .default(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday']),
    })
    .strict()
    .refine((rule) => rule.to_hour > rule.from_hour, {
      message: 'to_hour must be greater than from_hour',
      path: ['to_hour'],
    }),
])

export type AnomalyRuleConfig = z.infer<typeof anomalyRuleSchema>

export const alertsSchema = z
  .object({
    /** Receiver of JSON alert POSTs; absent: alerts are only logged. */
    webhook_url: z.url({ protocol: /^https?$/ }).optional(),
    /** Attempts per alert, the first included. Default: 5. */
    webhook_attempts: z.number().int().min(1).max(10).default(5),
    /** Delay before the second attempt; it doubles for each further attempt. Default: 500ms. */
    webhook_backoff: duration.default('500ms'),
    /** Time limit of one POST. Default: 5s. */
    webhook_timeout: duration.default('5s'),
    /** An alert with the same rule, application and subject is sent once per window. */
    dedup_window: duration.default('10m'),
  })
  .strict()

export type AlertsConfig = z.infer<typeof alertsSchema>

/** A dual control rule: matching requests need `required` approvals from `group`. */
export const approvalRuleSchema = z
  .object({
    operations: z.array(operation.or(z.literal(QUOTA_EXTENSION))).min(1),
    /** Only keys with one of these names; absent: every key. */
    keys: z.array(keyName).min(1).optional(),
    /** Only keys of this classification; absent: every classification. */
    classification: z.enum(['public', 'internal', 'confidential', 'restricted']).optional(),
    group: z.string().min(1),
    required: z.number().int(),
  })
  .strict()

export type ApprovalRuleConfig = z.infer<typeof approvalRuleSchema>

export const approvalsSchema = z
  .object({
    /** Groups of approvers by person name; a person's certificate names spiffe://DOMAIN/person/NAME. */
    groups: z.record(z.string().regex(/^[a-z0-9-]{1,64}$/), z.array(personName)).default({}),
    rules: z.array(approvalRuleSchema).default([]),
    /** Maximum lifetime of an approval request and its grant. Default: 1h. */
    max_ttl: duration.default('1h'),
    /** Maximum pending, unexpired requests per requester; further requests get 429. Default: 20. */
    max_pending: z.number().int().min(1).max(10_000).optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    config.rules.forEach((rule, index) => {
      const members = config.groups[rule.group]
      const path = ['rules', index]
      if (members === undefined) {
        const known = Object.keys(config.groups).join(', ') || 'none'
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'group'],
          message: `group '${rule.group}' is not defined in authz.approvals.groups (defined: ${known})`,
        })
        return
      }
      const distinct = new Set(members).size
      if (distinct === 0) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'group'],
          message: `group '${rule.group}' has no members; add approvers to it`,
        })
      }
      if (rule.required < 1 || rule.required > distinct) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'required'],
          message: `required must be between 1 and the ${distinct} distinct members of group '${rule.group}', got ${rule.required}`,
        })
      }
    })
  })

export type ApprovalsConfig = z.infer<typeof approvalsSchema>

/**
 * The control settings under authz. Each is optional, so that a configuration object built in
 * code without them stays valid; absent means none.
 */
export const controlsFields = {
  quotas: z
    .array(quotaSchema)
    .max(1000)
    .optional()
    .superRefine((quotas, ctx) => {
      const seen = new Set<string>()
      ;(quotas ?? []).forEach((quota, index) => {
        const name = quota.name ?? `quota-${index + 1}`
        if (seen.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'name'],
            message: `name '${name}' is used twice`,
          })
        }
        seen.add(name)
      })
    }),
  anomalies: z.array(anomalyRuleSchema).max(100).optional(),
  alerts: alertsSchema.optional(),
  approvals: approvalsSchema.optional(),
}

/**
 * Checks the references between the control settings: an anomaly rule with the
 * require_approval action needs an approval group that exists and an attainable count.
 */
export function checkControlReferences(
  authz: { anomalies?: AnomalyRuleConfig[]; approvals?: ApprovalsConfig },
  ctx: z.RefinementCtx,
): void {
  const groups = authz.approvals?.groups ?? {}
  ;(authz.anomalies ?? []).forEach((rule, index) => {
    if (!rule.action.includes('require_approval')) return
    const path = ['anomalies', index]
    const group = rule.approval_group
    const members = group === undefined ? undefined : groups[group]
    if (members === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'approval_group'],
        message:
          group === undefined
            ? 'the require_approval action needs approval_group, a group in authz.approvals.groups'
            : `group '${group}' is not defined in authz.approvals.groups`,
      })
      return
    }
    const distinct = new Set(members).size
    if (rule.approvals_required < 1 || rule.approvals_required > distinct) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'approvals_required'],
        message: `approvals_required must be between 1 and the ${distinct} distinct members of group '${group}', got ${rule.approvals_required}`,
      })
    }
  })
}
