import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import { EXIT } from '../cli-error.js'
import { chosenPolicyDir, loadEngineOrExit } from './policy-source.js'

export const policyCheckHelp = `Usage: hsmgate policy check [options]

Parses every .cedar file in the policy directory and validates it against the hsmgate schema,
as authz does when it loads or reloads policies. Prints the number of policies and the policy
set version on success. On failure it prints each problem as FILE:LINE:COLUMN and what to
change, and exits with 78.

Options:
  --dir DIR        Directory of the setup made by 'hsmgate init'; its hsmgate.yaml names the
                   policy directory. Default: ./var
  --policies DIR   Policy directory to check instead of the setup's.
`

/** `hsmgate policy check`: validates a policy directory. */
export function runPolicyCheck(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { dir: { type: 'string', default: 'var' }, policies: { type: 'string' } },
  })
  const dir = chosenPolicyDir(values)
  const engine = loadEngineOrExit(dir)
  const files = new Set([...engine.policies.values()].map((p) => p.file)).size
  process.stdout.write(
    `ok: ${engine.policies.size} policies in ${files} files in ${dir} are valid ` +
      `(version ${engine.version})\n`,
  )
  return Promise.resolve(EXIT.ok)
}
