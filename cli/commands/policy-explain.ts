import { parseArgs } from 'node:util'
import {
  caseRequest,
  loadPolicyCases,
  mergeFacts,
  PolicyCaseError,
} from '../../authz/policy-cases.js'
import type { PolicyDecision, PolicyEngine } from '../../authz/policy-engine.js'
import type { PolicyRequest } from '../../authz/policy-request.js'
import type { Logger } from '../../log/logger.js'
import { openStore } from '../../store/open-store.js'
import { CliError, EXIT } from '../cli-error.js'
import { chosenPolicyDir, loadEngineOrExit, setupConfig } from './policy-source.js'

export const policyExplainHelp = `Usage: hsmgate policy explain [options]

Decides one request against the policies and prints the decision, the reason and each
determining policy with its file, line and annotations. Applications and keys come from the
setup's store, or from a test file with --file and --case.

Options:
  --principal NAME   Application name, or service:NAME for a gateway service such as
                     service:probe. Required unless --case is given.
  --action ACTION    Action name such as sign, list-keys or health. Required unless --case.
  --key NAME         Key the action acts on, for key operations.
  --context JSON     Request facts overriding the defaults, for example
                     '{"time":{"hour":22},"certificate":{"keyProtection":"tpm"}}'.
  --file FILE        YAML test file to take entities and the case from.
  --case NAME        Name of the case in --file to explain.
  --dir DIR          Setup directory. Default: ./var
  --policies DIR     Policy directory instead of the setup's.
Exit status: 0 when the request is allowed, 1 when it is denied.
`

const OPTIONS = {
  principal: { type: 'string' },
  action: { type: 'string' },
  key: { type: 'string' },
  context: { type: 'string' },
  file: { type: 'string' },
  case: { type: 'string' },
  dir: { type: 'string', default: 'var' },
  policies: { type: 'string' },
} as const

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS }>>['values']

/** `hsmgate policy explain`: prints a decision and the policies that determined it. */
export async function runPolicyExplain(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parseArgs({ args: argv, options: OPTIONS })
  const { request, policies } =
    values.file === undefined ? await fromStore(values) : fromFile(values)
  const engine = loadEngineOrExit(values.policies ?? policies ?? chosenPolicyDir(values))
  const decision = engine.decide(request)
  process.stdout.write(render(engine, decision))
  return decision.allowed ? EXIT.ok : EXIT.failure
}

function fromFile(values: Values): { request: PolicyRequest; policies?: string } {
  try {
    const file = loadPolicyCases(values.file as string)
    const testCase = file.cases.find((c) => c.name === values.case)
    if (testCase === undefined) {
      throw new CliError(`--case names no case in ${values.file}`, EXIT.usage)
    }
    return { request: caseRequest(file, testCase), policies: file.policies }
  } catch (error) {
    if (error instanceof PolicyCaseError) throw new CliError(error.message, EXIT.usage)
    throw error
  }
}

async function fromStore(values: Values): Promise<{ request: PolicyRequest; policies?: string }> {
  if (values.principal === undefined || values.action === undefined) {
    throw new CliError('give --principal and --action, or --file and --case', EXIT.usage)
  }
  const store = await openStore(setupConfig(values.dir).store)
  try {
    const principal = values.principal.startsWith('service:')
      ? { kind: 'service' as const, name: values.principal.slice('service:'.length) }
      : {
          kind: 'application' as const,
          application: await store.application(values.principal),
        }
    if (principal.kind === 'application' && principal.application === undefined) {
      const known = (await store.listApplications()).map((a) => a.name).join(', ') || 'none'
      throw new CliError(
        `no application named '${values.principal}' in the store of ${values.dir} ` +
          `(registered: ${known}); pass --dir for another setup, or take the application ` +
          'from a test file with --file cases.yaml --case NAME',
        EXIT.usage,
      )
    }
    const key = values.key === undefined ? undefined : (await store.keyVersions(values.key))[0]
    if (values.key !== undefined && key === undefined) {
      throw new CliError(`no key named '${values.key}' in the store`, EXIT.usage)
    }
    return {
      request: {
        principal: principal as PolicyRequest['principal'],
        action: values.action,
        ...(key === undefined ? {} : { key }),
        context: mergeFacts(parseContext(values.context)),
      },
    }
  } finally {
    await store.close()
  }
}

function parseContext(text: string | undefined): Parameters<typeof mergeFacts>[0] {
  if (text === undefined) return {}
  try {
    return JSON.parse(text) as Parameters<typeof mergeFacts>[0]
  } catch (error) {
    throw new CliError(`--context is not JSON: ${(error as Error).message}`, EXIT.usage)
  }
}

function render(engine: PolicyEngine, decision: PolicyDecision): string {
  const lines = [
    `decision: ${decision.allowed ? 'allow' : 'deny'}`,
    `reason: ${decision.reason}`,
    'determining policies:',
  ]
  for (const id of decision.policyIds) {
    const policy = engine.policies.get(id)
    if (policy === undefined) {
      lines.push(`  ${id} (no policy matched; requests are denied by default)`)
      continue
    }
    lines.push(`  ${id} (${policy.effect}, ${policy.file}:${policy.line}:${policy.column})`)
    for (const [name, value] of Object.entries(policy.annotations)) {
      lines.push(`    @${name}: ${value}`)
    }
  }
  for (const error of decision.errors) {
    lines.push(`evaluation error in ${error.policyId}: ${error.message}`)
  }
  return lines.join('\n') + '\n'
}
