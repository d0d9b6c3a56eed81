import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parse } from 'yaml'
import { z } from 'zod'
import type { Application } from '../store/store.js'
import type { PolicyDecision, PolicyEngine } from './policy-engine.js'
import type { ContextFacts, PolicyKey, PolicyPrincipal, PolicyRequest } from './policy-request.js'

/** Facts of an ordinary request, which a case's `context` overrides field by field. */
export const DEFAULT_FACTS: ContextFacts = {
  sourceAddress: '127.0.0.1',
  sourceMatchesHost: true,
  certificate: {
    issuer: 'CN=hsmgate demo root CA',
    serial: '01',
    lifetimeSeconds: 3600,
    ageSeconds: 60,
    keyProtection: 'software',
  },
  time: { hour: 12, minute: 0, weekday: 'Wednesday' },
  encryptionContext: null,
  requestBytes: 0,
  approvalGranted: false,
}

const long = z
  .number()
  .int()
  .min(-(2 ** 53))
  .max(2 ** 53)
const contextSchema = z
  .object({
    sourceAddress: z.string(),
    sourceMatchesHost: z.boolean(),
    certificate: z
      .object({
        issuer: z.string(),
        serial: z.string(),
        lifetimeSeconds: long,
        ageSeconds: long,
        keyProtection: z.enum(['software', 'tpm']),
      })
      .strict()
      .partial(),
    time: z.object({ hour: long, minute: long, weekday: z.string() }).strict().partial(),
    algorithm: z.string(),
    encryptionContext: z.record(z.string(), z.string()).nullable(),
    requestBytes: long,
    approvalGranted: z.boolean(),
  })
  .strict()
  .partial()

const caseSchema = z
  .object({
    name: z.string().min(1),
    principal: z.string().min(1),
    action: z.string().min(1),
    key: z.string().optional(),
    context: contextSchema.default({}),
    expect: z.enum(['allow', 'deny']),
    reason: z.string().optional(),
    policies: z.array(z.string()).optional(),
  })
  .strict()

const applicationSchema = z
  .object({
    team: z.string().default('demo'),
    hosts: z.array(z.string()).default([]),
    addresses: z.array(z.string()).default([]),
    suspended: z.boolean().default(false),
  })
  .strict()

const keySchema = z
  .object({
    owner: z.string(),
    type: z.string().default('ec-p256'),
    tags: z.array(z.string()).default([]),
    classification: z.enum(['public', 'internal', 'confidential', 'restricted']),
  })
  .strict()

const fileSchema = z
  .object({
    policies: z.string().optional(),
    applications: z.record(z.string(), applicationSchema).default({}),
    keys: z.record(z.string(), keySchema).default({}),
    cases: z.array(caseSchema).min(1, 'list at least one case'),
  })
  .strict()

export type PolicyCase = z.infer<typeof caseSchema>

/** A parsed test file: where its policies are, its entities and its cases. */
export interface PolicyCaseFile {
  readonly file: string
  /** The policy directory the file names, resolved against the file's directory. */
  readonly policies: string | undefined
  readonly applications: ReadonlyMap<string, Application>
  readonly keys: ReadonlyMap<string, PolicyKey>
  readonly cases: readonly PolicyCase[]
}

/** A test file that cannot be read or does not match the format. */
export class PolicyCaseError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PolicyCaseError'
  }
}

/** Reads and validates a YAML test file. Throws PolicyCaseError naming each invalid field. */
export function loadPolicyCases(file: string): PolicyCaseFile {
  let raw: unknown
  try {
    raw = parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new PolicyCaseError(`cannot read ${file}: ${(error as Error).message}`)
  }
  const parsed = fileSchema.safeParse(raw)
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (i) => `  ${i.path.join('.') || '(top level)'}: ${i.message}`,
    )
    throw new PolicyCaseError(`${file} is invalid:\n${lines.join('\n')}`)
  }
  const data = parsed.data
  const createdAt = new Date(0).toISOString()
  return {
    file,
    policies: data.policies === undefined ? undefined : resolve(dirname(file), data.policies),
    applications: new Map(
      Object.entries(data.applications).map(([name, a]) => [name, { name, ...a, createdAt }]),
    ),
    keys: new Map(Object.entries(data.keys).map(([name, k]) => [name, { name, ...k }])),
    cases: data.cases,
  }
}

/** Builds the request a case describes. Throws PolicyCaseError for unknown entities. */
export function caseRequest(file: PolicyCaseFile, testCase: PolicyCase): PolicyRequest {
  return {
    principal: casePrincipal(file, testCase.principal),
    action: testCase.action,
    ...(testCase.key === undefined ? {} : { key: caseKey(file, testCase.key) }),
    context: mergeFacts(testCase.context),
  }
}

/** Overrides default facts with the given ones, field by field. */
export function mergeFacts(context: z.infer<typeof contextSchema>): ContextFacts {
  return {
    ...DEFAULT_FACTS,
    ...context,
    certificate: { ...DEFAULT_FACTS.certificate, ...context.certificate },
    time: { ...DEFAULT_FACTS.time, ...context.time },
  }
}

function casePrincipal(file: PolicyCaseFile, name: string): PolicyPrincipal {
  if (name.startsWith('service:')) return { kind: 'service', name: name.slice('service:'.length) }
  const application = file.applications.get(name)
  if (application === undefined) {
    throw new PolicyCaseError(`application '${name}' is not listed under applications`)
  }
  return { kind: 'application', application }
}

function caseKey(file: PolicyCaseFile, name: string) {
  const key = file.keys.get(name)
  if (key === undefined) throw new PolicyCaseError(`key '${name}' is not listed under keys`)
  return key
}

/** Differences between a case's expectation and a decision, as `field: expected -> actual`. */
export function caseMismatches(testCase: PolicyCase, decision: PolicyDecision): string[] {
  const out: string[] = []
  const actual = decision.allowed ? 'allow' : 'deny'
  if (actual !== testCase.expect) out.push(`decision: expected ${testCase.expect}, got ${actual}`)
  if (testCase.reason !== undefined && testCase.reason !== decision.reason) {
    out.push(
      `reason: expected ${JSON.stringify(testCase.reason)}, got ${JSON.stringify(decision.reason)}`,
    )
  }
  const ids = [...decision.policyIds].sort()
  if (testCase.policies !== undefined && testCase.policies.slice().sort().join() !== ids.join()) {
    out.push(`policies: expected [${testCase.policies.join(', ')}], got [${ids.join(', ')}]`)
  }
  return out
}

/** Runs every case; returns each case's mismatches, empty when it passed. */
export function runPolicyCases(
  engine: PolicyEngine,
  file: PolicyCaseFile,
): { name: string; mismatches: string[] }[] {
  return file.cases.map((testCase) => {
    try {
      return {
        name: testCase.name,
        mismatches: caseMismatches(testCase, engine.decide(caseRequest(file, testCase))),
      }
    } catch (error) {
      return { name: testCase.name, mismatches: [`error: ${(error as Error).message}`] }
    }
  })
}
