import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import * as cedar from '@cedar-policy/cedar-wasm/nodejs'
import { renderSchema } from './policy-schema.js'

/** One policy from a .cedar file, with where it starts and its annotations. */
export interface LoadedPolicy {
  readonly id: string
  readonly text: string
  readonly file: string
  readonly line: number
  readonly column: number
  readonly effect: 'permit' | 'forbid'
  readonly annotations: Readonly<Record<string, string>>
}

/** A validated policy set: policies by id, and a digest of the files that produced it. */
export interface PolicySource {
  readonly dir: string
  readonly policies: ReadonlyMap<string, LoadedPolicy>
  /** First 12 hex digits of the SHA-256 over file names and contents. */
  readonly version: string
}

/** A policy directory that cannot be read or fails parsing or validation against the schema. */
export class PolicyError extends Error {
  readonly code = 'policy_invalid'

  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(problems.length === 0 ? message : `${message}:\n  ${problems.join('\n  ')}`)
    this.name = 'PolicyError'
  }
}

/** Maximum size of one policy file, and of all policy files together, in bytes. */
const MAX_FILE_BYTES = 1024 * 1024
const MAX_TOTAL_BYTES = 8 * 1024 * 1024
const MAX_FILES = 1000

/** Policy ids are what audit records and deny answers name, so they are short and plain. */
const POLICY_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/

/** Lists the .cedar files in `dir`, sorted by name. Throws PolicyError. */
export function policyFiles(dir: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.cedar'))
  } catch (error) {
    throw new PolicyError(`cannot read policy directory ${dir}: ${(error as Error).message}`)
  }
  if (names.length > MAX_FILES) {
    throw new PolicyError(`${dir} has ${names.length} .cedar files; the maximum is ${MAX_FILES}`)
  }
  return names.sort().map((name) => join(dir, name))
}

/**
 * Reads every .cedar file in `dir`, parses it and validates it against the hsmgate schema in
 * strict mode. Every policy needs an `@id("...")` annotation, unique across files, and every
 * forbid policy a `@reason("...")`, because deny answers and audit records carry both. An empty
 * directory is an error, since it would deny every request. Throws PolicyError listing each
 * problem as `file:line:column: message`.
 */
export function loadPolicyDir(dir: string): PolicySource {
  const files = policyFiles(dir)
  if (files.length === 0) {
    throw new PolicyError(`${dir} has no .cedar files; write at least one policy`)
  }
  const hash = createHash('sha256')
  const problems: string[] = []
  const policies = new Map<string, LoadedPolicy>()
  let total = 0
  for (const file of files) {
    const text = readPolicyFile(file)
    total += Buffer.byteLength(text)
    if (total > MAX_TOTAL_BYTES) {
      throw new PolicyError(`policy files in ${dir} exceed ${MAX_TOTAL_BYTES} bytes together`)
    }
    hash.update(`${file}\0${text}\0`)
    for (const policy of parsePolicyFile(file, text, problems)) {
      const previous = policies.get(policy.id)
      if (previous !== undefined) {
        problems.push(
          `${where(policy)}: policy id '${policy.id}' is also used at ${where(previous)}; ` +
            'give each policy its own @id',
        )
        continue
      }
      policies.set(policy.id, policy)
    }
  }
  if (problems.length > 0) {
    throw new PolicyError(`policies in ${dir} are invalid`, problems)
  }
  return { dir, policies, version: hash.digest('hex').slice(0, 12) }
}

function readPolicyFile(file: string): string {
  try {
    const size = statSync(file).size
    if (size > MAX_FILE_BYTES) {
      throw new PolicyError(`${file} is ${size} bytes; the maximum is ${MAX_FILE_BYTES}`)
    }
    return readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof PolicyError) throw error
    throw new PolicyError(`cannot read ${file}: ${(error as Error).message}`)
  }
}

let cachedSchema: string | undefined

/** The schema text, rendered once per process. */
export function schemaText(): string {
  cachedSchema ??= renderSchema()
  return cachedSchema
}

/**
 * Parses and validates one file's text. Problems go to `problems`, and the valid policies are
 * returned. Validation runs on the whole file, so error offsets point into `text`.
 */
export function parsePolicyFile(file: string, text: string, problems: string[]): LoadedPolicy[] {
  const parsed = cedar.checkParsePolicySet({ staticPolicies: text })
  if (parsed.type === 'failure') {
    problems.push(...parsed.errors.map((error) => located(file, text, error)))
    return []
  }
  const parts = cedar.policySetTextToParts(text)
  if (parts.type === 'failure') {
    problems.push(...parts.errors.map((error) => located(file, text, error)))
    return []
  }
  if (parts.policy_templates.length > 0) {
    problems.push(`${file}:1:1: templates are not supported; write static policies`)
  }
  const validation = cedar.validate({
    schema: schemaText(),
    policies: { staticPolicies: text },
    validationSettings: { mode: 'strict' },
  })
  if (validation.type === 'failure') {
    problems.push(...validation.errors.map((error) => located(file, text, error)))
    return []
  }
  for (const { error } of validation.validationErrors) problems.push(located(file, text, error))

  const policies: LoadedPolicy[] = []
  let cursor = 0
  for (const part of parts.policies) {
    const found = text.indexOf(part, cursor)
    const offset = found === -1 ? cursor : found
    cursor = found === -1 ? cursor : found + part.length
    const policy = describePart(file, text, offset, part, problems)
    if (policy !== undefined) policies.push(policy)
  }
  return policies
}

function describePart(
  file: string,
  text: string,
  offset: number,
  part: string,
  problems: string[],
): LoadedPolicy | undefined {
  const { line, column } = lineColumn(text, offset)
  const json = cedar.policyToJson(part)
  if (json.type === 'failure') {
    problems.push(`${file}:${line}:${column}: ${json.errors[0]?.message ?? 'cannot read policy'}`)
    return undefined
  }
  const annotations = json.json.annotations ?? {}
  const id = annotations.id
  if (id === undefined || !POLICY_ID_PATTERN.test(id)) {
    problems.push(
      `${file}:${line}:${column}: add @id("...") to this policy: 1 to 64 lowercase letters, ` +
        'digits, dots, hyphens or underscores',
    )
    return undefined
  }
  const effect = json.json.effect
  if (effect === 'forbid' && (annotations.reason ?? '').trim() === '') {
    problems.push(
      `${file}:${line}:${column}: add @reason("...") to forbid policy '${id}'; ` +
        'deny answers show it to the client',
    )
    return undefined
  }
  return { id, text: part, file, line, column, effect, annotations }
}

function located(file: string, text: string, error: cedar.DetailedError): string {
  const start = error.sourceLocations?.[0]?.start
  const { line, column } = start === undefined ? { line: 1, column: 1 } : lineColumn(text, start)
  const help = error.help === null || error.help === undefined ? '' : `; ${error.help}`
  return `${file}:${line}:${column}: ${error.message}${help}`
}

/** Converts a character offset into a 1-based line and column. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  return { line, column: offset - before.lastIndexOf('\n') }
}

function where(policy: LoadedPolicy): string {
  return `${policy.file}:${policy.line}:${policy.column}`
}
