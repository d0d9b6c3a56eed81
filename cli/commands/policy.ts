import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { policyCheckHelp, runPolicyCheck } from './policy-check.js'
import { policyExplainHelp, runPolicyExplain } from './policy-explain.js'
import { policyTestHelp, runPolicyTest } from './policy-test.js'

const overview = `Usage: hsmgate policy <check|test|explain> [options]

Works with the Cedar authorization policies that authz enforces.

Subcommands:
  check     Validate the policy directory against the hsmgate schema.
  test      Run table-driven YAML test cases and report mismatches.
  explain   Decide one request and show the determining policies and their annotations.

Exit status: 0 on success, 1 on a
test mismatch or a denied explain, 2 on a usage error, 78 when the policies are invalid.
`

export const policyHelp = [overview, policyCheckHelp, policyTestHelp, policyExplainHelp].join('\n')

const subcommands: Record<
  string,
  { help: string; run: (argv: string[], logger: Logger) => Promise<number> }
> = {
  check: { help: policyCheckHelp, run: runPolicyCheck },
  test: { help: policyTestHelp, run: runPolicyTest },
  explain: { help: policyExplainHelp, run: runPolicyExplain },
}

/** `hsmgate policy SUBCOMMAND`: dispatches to check, test or explain. */
export async function runPolicy(argv: string[], logger: Logger): Promise<number> {
  const [name, ...rest] = argv
  const subcommand = name === undefined ? undefined : subcommands[name]
  if (subcommand === undefined) {
    throw new CliError(`name a subcommand: check, test or explain\n\n${overview}`, EXIT.usage)
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(subcommand.help)
    return EXIT.ok
  }
  return subcommand.run(rest, logger)
}
