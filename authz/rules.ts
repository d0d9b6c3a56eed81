import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { parse } from 'yaml'
import { z } from 'zod'
import type { Logger } from '../log/logger.js'
import {
  KEY_NAME_PATTERN,
  OPERATIONS,
  isKeyedOperation,
  type Operation,
  type OperationName,
} from './operation.js'

/** A rules file that cannot be read, is not YAML, or fails validation. */
export class RulesError extends Error {
  readonly code = 'rules_invalid'

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RulesError'
  }
}

/** One grant: a principal may run these operations, on these keys for keyed operations. */
export interface Rule {
  readonly principal: string
  readonly operations: readonly OperationName[]
  /** Exact key names or prefixes ending in '*'. Present only on rules for keyed operations. */
  readonly keys?: readonly string[]
}

export type RuleDecision =
  | { readonly allowed: true; readonly ruleIndex: number }
  | {
      readonly allowed: false
      readonly reason: 'no_rule_for_principal' | 'operation_not_granted' | 'key_not_granted'
    }

const RELOAD_FAILED = 'authorization rules not reloaded; keeping the last valid rules'

/** Maximum rules file size in bytes. */
const MAX_RULES_FILE_BYTES = 1024 * 1024

const SPIFFE_ID_PATTERN = /^spiffe:\/\/([a-z0-9._-]+)(\/[A-Za-z0-9._-]+)+$/
const KEY_PREFIX_PATTERN = /^[a-z0-9-]{0,63}\*$/

const operationSchema = z.enum(OPERATIONS, {
  error: () => `must be one of: ${OPERATIONS.join(', ')}`,
})

const keyPatternSchema = z
  .string()
  .refine((value) => KEY_NAME_PATTERN.test(value) || KEY_PREFIX_PATTERN.test(value), {
    message:
      "must be a key name (1 to 64 lowercase letters, digits or hyphens) or such a prefix followed by '*'",
  })

function ruleSchema(trustDomain: string | undefined) {
  return z
    .object({
      principal: z
        .string()
        .regex(SPIFFE_ID_PATTERN, 'must be a SPIFFE ID such as spiffe://hsmgate.demo/app/payments'),
      operations: z.array(operationSchema).min(1, 'must list at least one operation'),
      keys: z
        .array(keyPatternSchema)
        .min(1, 'must list at least one key; omit it for key-less operations')
        .optional(),
    })
    .strict()
    .superRefine((rule, context) => {
      const domain = SPIFFE_ID_PATTERN.exec(rule.principal)?.[1]
      if (trustDomain !== undefined && domain !== undefined && domain !== trustDomain) {
        context.addIssue({
          code: 'custom',
          path: ['principal'],
          message: `must be in trust domain ${trustDomain}`,
        })
      }
      rule.operations.forEach((operation, index) => {
        if (rule.keys !== undefined && !isKeyedOperation(operation)) {
          context.addIssue({
            code: 'custom',
            path: ['operations', index],
            message: `${operation} takes no key; grant it in a rule without keys`,
          })
        }
        if (rule.keys === undefined && isKeyedOperation(operation)) {
          context.addIssue({
            code: 'custom',
            path: ['operations', index],
            message: `${operation} needs a key; add keys to this rule`,
          })
        }
      })
    })
}

function rulesFileSchema(trustDomain: string | undefined) {
  return z.object({ rules: z.array(ruleSchema(trustDomain)) }).strict()
}

/** Immutable rules loaded from one version of the rules file. Anything not granted is denied. */
export class RuleSet {
  readonly rules: readonly Rule[]
  /** First 12 hex digits of the SHA-256 of the file content, to tell versions apart in logs. */
  readonly version: string

  constructor(rules: readonly Rule[], version: string) {
    this.rules = Object.freeze(rules.map((rule) => Object.freeze({ ...rule })))
    this.version = version
  }

  /**
   * Returns the first rule that grants `operation` to `principal`. A keyed operation needs a rule
   * with a matching key pattern, and a key-less operation needs a rule without keys.
   */
  evaluate(principal: string, operation: Operation): RuleDecision {
    let principalSeen = false
    let operationSeen = false
    for (const [index, rule] of this.rules.entries()) {
      if (rule.principal !== principal) {
        continue
      }
      principalSeen = true
      if (!rule.operations.includes(operation.name)) {
        continue
      }
      if (!('key' in operation)) {
        if (rule.keys === undefined) {
          return { allowed: true, ruleIndex: index }
        }
        continue
      }
      operationSeen = true
      if (rule.keys?.some((pattern) => keyMatches(pattern, operation.key))) {
        return { allowed: true, ruleIndex: index }
      }
    }
    if (!principalSeen) {
      return { allowed: false, reason: 'no_rule_for_principal' }
    }
    return { allowed: false, reason: operationSeen ? 'key_not_granted' : 'operation_not_granted' }
  }
}

/** Matches a key against an exact name or a prefix pattern ending in '*'. */
export function keyMatches(pattern: string, key: string): boolean {
  return pattern.endsWith('*') ? key.startsWith(pattern.slice(0, -1)) : key === pattern
}

/**
 * Parses and validates rules file content. `file` is used in messages only. When `trustDomain` is
 * given, every principal must belong to it. Throws RulesError listing each invalid field as a
 * path such as `rules[1].operations[0]`.
 */
export function parseRules(text: string, file: string, trustDomain?: string): RuleSet {
  let raw: unknown
  try {
    raw = parse(text)
  } catch (error) {
    throw new RulesError(`${file} is not valid YAML: ${(error as Error).message}`, {
      cause: error,
    })
  }

  // An empty file is rejected rather than read as "no rules", because a file caught halfway
  // through a write would otherwise revoke every grant on reload.
  if (raw === null || raw === undefined) {
    throw new RulesError(`${file} is empty; write 'rules: []' to deny every request`)
  }
  const parsed = rulesFileSchema(trustDomain).safeParse(raw)
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${formatPath(issue.path)}: ${issue.message}`,
    )
    throw new RulesError(`${file} is invalid:\n${lines.join('\n')}`)
  }
  return new RuleSet(parsed.data.rules, contentVersion(text))
}

/** Reads and validates a rules file. Throws RulesError. */
export function loadRules(file: string, trustDomain?: string): RuleSet {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new RulesError(`cannot read rules file ${file}: ${(error as Error).message}`, {
      cause: error,
    })
  }
  checkSize(file, Buffer.byteLength(text))
  return parseRules(text, file, trustDomain)
}

/** The rules currently in force, replaced as a whole when the file changes. */
export interface RulesWatcher {
  current(): RuleSet
  /** Re-reads the file now if its metadata changed. Resolves when that attempt ends. */
  reloadIfChanged(): Promise<void>
  close(): void
}

export interface WatchRulesOptions {
  readonly logger: Logger
  readonly trustDomain?: string
  /** How often the file is checked for changes, in milliseconds. */
  readonly intervalMs?: number
}

/**
 * Loads `file` now, throwing RulesError if it is invalid, and then polls it. A changed file
 * that validates replaces the rule set atomically. A missing or invalid file keeps the last good
 * set and logs the reason once per change. Polling with stat is used instead of fs.watch because
 * editors and deploy tools often replace the file by rename, which ends an fs.watch on the file.
 */
export function watchRules(file: string, options: WatchRulesOptions): RulesWatcher {
  const { logger, trustDomain } = options
  const intervalMs = options.intervalMs ?? 1_000
  let rules = loadRules(file, trustDomain)
  let lastSignature: string | undefined
  let lastContentVersion = rules.version
  let running: Promise<void> | undefined

  const attempt = async (): Promise<void> => {
    let signature: string
    try {
      const stats = await stat(file)
      signature = `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`
    } catch (error) {
      signature = `stat failed: ${(error as NodeJS.ErrnoException).code ?? 'unknown'}`
      if (signature !== lastSignature) {
        lastSignature = signature
        logger.error({ file, err: error, rules_version: rules.version }, RELOAD_FAILED)
      }
      return
    }
    if (signature === lastSignature) {
      return
    }
    lastSignature = signature

    try {
      const text = await readFile(file, 'utf8')
      checkSize(file, Buffer.byteLength(text))
      if (contentVersion(text) === lastContentVersion) {
        return
      }
      const next = parseRules(text, file, trustDomain)
      rules = next
      lastContentVersion = next.version
      logger.info(
        { file, rules: next.rules.length, rules_version: next.version },
        'authorization rules reloaded',
      )
    } catch (error) {
      logger.error({ file, err: error, rules_version: rules.version }, RELOAD_FAILED)
    }
  }

  const reloadIfChanged = (): Promise<void> => {
    running ??= attempt().finally(() => {
      running = undefined
    })
    return running
  }

  const timer = setInterval(() => void reloadIfChanged(), intervalMs)
  timer.unref()

  return {
    current: () => rules,
    reloadIfChanged,
    close: () => clearInterval(timer),
  }
}

function checkSize(file: string, bytes: number): void {
  if (bytes > MAX_RULES_FILE_BYTES) {
    throw new RulesError(
      `rules file ${file} is ${bytes} bytes; the maximum is ${MAX_RULES_FILE_BYTES}`,
    )
  }
}

function contentVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12)
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) {
    return '(top level)'
  }
  let out = ''
  for (const part of path) {
    out += typeof part === 'number' ? `[${part}]` : `${out === '' ? '' : '.'}${String(part)}`
  }
  return out
}
