#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../config/load.js'
import { projectRoot } from '../config/project-root.js'
import { createLogger } from '../log/logger.js'
import { CliError, EXIT } from './cli-error.js'
import { agentHelp, runAgent } from './commands/agent.js'
import { auditHelp, runAudit } from './commands/audit.js'
import { runTokens, tokensHelp } from './commands/tokens.js'
import { runTpm, tpmHelp } from './commands/tpm.js'
import { caHelp, runCa } from './commands/ca.js'
import { certsHelp, runCerts } from './commands/certs.js'
import { appsHelp, runApps } from './commands/apps.js'
import { approvalsHelp, runApprovals } from './commands/approvals.js'
import { demoHelp, runDemo } from './commands/demo.js'
import { initHelp, runInit } from './commands/init.js'
import { keysHelp, runKeys } from './commands/keys.js'
import { policyHelp, runPolicy } from './commands/policy.js'
import { runUp, upHelp } from './commands/up.js'
import { runHelp, runRun } from './commands/run.js'
import { runStatus, statusHelp } from './commands/status.js'
import { doctorHelp, runDoctor } from './commands/doctor.js'

function packageVersion(): string {
  const file = join(projectRoot(), 'package.json')
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

const usage = `Usage: hsmgate <command> [options]

Commands:
  init       Create an embedded setup (SoftHSM2 cluster, demo PKI, demo applications).
  up         Run the gateway (Envoy, authz, crypto backend) in the foreground.
  run        Run one gateway process (envoy, authz or backend), for systemd units.
  status     Show a running gateway: processes, HSM members, policies, certificates, alerts.
  doctor     Check an installation and print what to do about each problem.
  demo       Create a setup if needed, run the gateway and show a signed, verified request.
  keys       List, create, classify, rotate, disable, enable, destroy and check keys.
  policy     Check, test and explain the Cedar authorization policies.
  tokens     Create single-use enrollment tokens for application hosts.
  agent      Enroll an application host and renew its client certificate.
  tpm        Register the TPM attestation keys of application hosts.
  ca         Create the issuing CA's key in the HSM with a CSR, and import its certificate.
  certs      List and revoke client certificates; publish the CRL and serving certificate.
  apps       Register, show and list applications; suspend and resume one.
  approvals  Request, list, show, approve and deny dual control approvals.
  audit      Verify the signed audit chains, prove operation receipts, export records.

Run 'hsmgate <command> --help' for a command's options, 'hsmgate --version' for the version.
`

const commands: Record<string, { help: string; run: typeof runInit }> = {
  init: { help: initHelp, run: runInit },
  up: { help: upHelp, run: runUp },
  run: { help: runHelp, run: runRun },
  status: { help: statusHelp, run: runStatus },
  doctor: { help: doctorHelp, run: runDoctor },
  demo: { help: demoHelp, run: runDemo },
  keys: { help: keysHelp, run: runKeys },
  policy: { help: policyHelp, run: runPolicy },
  tokens: { help: tokensHelp, run: runTokens },
  agent: { help: agentHelp, run: runAgent },
  tpm: { help: tpmHelp, run: runTpm },
  ca: { help: caHelp, run: runCa },
  certs: { help: certsHelp, run: runCerts },
  apps: { help: appsHelp, run: runApps },
  approvals: { help: approvalsHelp, run: runApprovals },
  audit: { help: auditHelp, run: runAudit },
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === '--version' || name === 'version') {
    process.stdout.write(`hsmgate ${packageVersion()}\n`)
    return EXIT.ok
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage)
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = commands[name]
  if (command === undefined) {
    process.stderr.write(`hsmgate: unknown command '${name}'\n\n${usage}`)
    return EXIT.usage
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help)
    return EXIT.ok
  }
  return command.run(rest, createLogger(`cli-${name}`))
}

// A reader that closes the pipe early, such as 'hsmgate audit export | head', ends the output
// normally: the command stops quietly instead of failing on the next write.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok)
  throw error
})

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof CliError || error instanceof ConfigError) {
      process.stderr.write(`hsmgate: ${error.message}\n`)
      process.exit(error instanceof CliError ? error.exitCode : EXIT.config)
    }
    if (
      error instanceof TypeError &&
      'code' in error &&
      String(error.code).startsWith('ERR_PARSE_ARGS')
    ) {
      const command = process.argv[2] ?? ''
      process.stderr.write(`hsmgate: ${error.message}; run 'hsmgate ${command} --help'\n`)
      process.exit(EXIT.usage)
    }
    process.stderr.write(`hsmgate: unexpected error: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(EXIT.failure)
  },
)
