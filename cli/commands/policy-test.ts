import { parseArgs } from 'node:util'
import { loadPolicyCases, PolicyCaseError, runPolicyCases } from '../../authz/policy-cases.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { chosenPolicyDir, loadEngineOrExit } from './policy-source.js'

export const policyTestHelp = `Usage: hsmgate policy test [options] FILE...

Runs the table-driven cases in each YAML FILE against the policies and prints one line per
case. A case names a principal (an application listed in the file, or service:NAME), an action,
an optional key listed in the file, request facts under 'context' that override the defaults
(source 127.0.0.1 matching the host, a one-hour software-key certificate, Wednesday 12:00 UTC),
and the expected decision, and optionally the expected reason and policy ids. Exits with 1 and
prints the differences when any case does not match. docs/policy-guide.md shows the format.

Options:
  --policies DIR   Policy directory. Default: the 'policies' entry of the file, resolved
                   against the file's directory, else the setup's policy directory.
  --dir DIR        Setup directory whose hsmgate.yaml names the policy directory, used when
                   neither --policies nor the file names one. Default: ./var
`

/** `hsmgate policy test FILE...`: runs policy test cases and reports mismatches. */
export function runPolicyTest(argv: string[], _logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { dir: { type: 'string', default: 'var' }, policies: { type: 'string' } },
    allowPositionals: true,
  })
  if (positionals.length === 0) {
    throw new CliError('name at least one test FILE', EXIT.usage)
  }
  let failed = 0
  let total = 0
  for (const path of positionals) {
    const file = loadCases(path)
    const engine = loadEngineOrExit(values.policies ?? file.policies ?? chosenPolicyDir(values))
    for (const result of runPolicyCases(engine, file)) {
      total += 1
      if (result.mismatches.length === 0) {
        process.stdout.write(`pass  ${result.name}\n`)
        continue
      }
      failed += 1
      process.stdout.write(`FAIL  ${result.name}\n`)
      for (const line of result.mismatches) process.stdout.write(`        ${line}\n`)
    }
  }
  process.stdout.write(`${total} cases, ${total - failed} passed, ${failed} failed\n`)
  return Promise.resolve(failed === 0 ? EXIT.ok : EXIT.failure)
}

function loadCases(path: string) {
  try {
    return loadPolicyCases(path)
  } catch (error) {
    if (error instanceof PolicyCaseError) throw new CliError(error.message, EXIT.usage)
    throw error
  }
}
