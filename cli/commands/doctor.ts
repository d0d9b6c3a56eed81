import { parseArgs } from 'node:util'
import { loadConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import { EXIT } from '../cli-error.js'
import { checkAdminSocket, checkRenamedKeys } from '../doctor/admin-socket-check.js'
import type { CheckResult } from '../doctor/check-result.js'
import {
  checkCaCertificate,
  checkClock,
  checkEnvoy,
  checkPolicies,
  checkStore,
} from '../doctor/host-checks.js'
import { checkMembers } from '../doctor/hsm-checks.js'
import { checkPorts } from '../doctor/port-checks.js'

export const doctorHelp = `Usage: hsmgate doctor [options]

Checks an installation and prints, for each problem, what to do: the Envoy binary and its
version, that each PKCS#11 module loads and its token is present, the PIN files' modes
(0600 or 0400) and owner, the clock against the CA certificate and the audit, the store and
its migrations, the CA certificate, that the ports are free or used by this gateway, that
Envoy's admin socket has mode 0600, and the policy directory. It does not log in to a token and never prints a PIN.

Exit codes: 0 when no check failed (warnings allowed), 1 when at least one failed.

Options:
  --config FILE  Path of hsmgate.yaml. Default: var/hsmgate.yaml
  --json         Print the results as a JSON array instead of text.
`

/** `hsmgate doctor`: checks an installation and exits non-zero when a check fails. */
export async function runDoctor(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', default: 'var/hsmgate.yaml' },
      json: { type: 'boolean', default: false },
    },
  })
  const config = loadConfig(values.config)
  const results: CheckResult[] = [
    { name: 'config', status: 'ok', detail: `${config.file} is valid` },
    ...checkRenamedKeys(config),
    checkEnvoy(),
    checkAdminSocket(config),
    ...checkMembers(config),
    checkClock(config),
    checkStore(config),
    checkCaCertificate(config),
    ...(await checkPorts(config)),
    checkPolicies(config),
  ]
  process.stdout.write(
    values.json ? `${JSON.stringify(results, null, 2)}\n` : formatResults(results),
  )
  return results.some((r) => r.status === 'fail') ? EXIT.failure : EXIT.ok
}

function formatResults(results: CheckResult[]): string {
  const lines = results.map((r) => {
    const head = `${r.status.toUpperCase().padEnd(4)} ${r.name}: ${r.detail}`
    return r.fix === undefined ? head : `${head}\n     fix: ${r.fix}`
  })
  const failed = results.filter((r) => r.status === 'fail').length
  const warned = results.filter((r) => r.status === 'warn').length
  lines.push(`${failed} failed, ${warned} warnings, ${results.length - failed - warned} ok`)
  return `${lines.join('\n')}\n`
}
