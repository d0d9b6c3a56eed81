import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { runAuditExport } from './audit-export.js'
import { runAuditVerify } from './audit-verify.js'

export const auditHelp = `Usage: hsmgate audit <subcommand> [options]

Verifies and exports the tamper-evident audit log: one SHA-256 hash chain per writer (each
crypto backend, and authz as NODE/authz) with checkpoints signed by the HSM audit key.

Subcommands:
  verify                      Check every writer's chain and checkpoints. Prints one line per
                              writer and exits 1 naming the first bad record (writer and seq).
  verify --receipt RECEIPT    Prove that the log holds the record of an operation's receipt
                              (the JSON of the x-hsmgate-audit-receipt response header, or a
                              file that contains it). Exits 0 when a signed checkpoint covers
                              it, 3 when the record is intact but no checkpoint covers it yet,
                              and 1 when the record is missing or does not match.
  export                      Write records as JSON lines to stdout, ordered by writer and seq.

Options:
  --config FILE       The gateway's hsmgate.yaml. Default: DIR/hsmgate.yaml
  --dir DIR           Directory of the setup made by 'hsmgate init'. Default: ./var
  --public-key FILE   For verify: PEM file of the trusted audit public keys. Default: the file
                      that audit.public_keys names (pki/audit-keys.pem). Keep a copy of it
                      away from the gateway host and pass it here. Repeat the option to trust
                      the keys of several files, such as one per gateway node.
  --writer WRITER     Only this writer's chain, such as 'node-1' or 'node-1/authz'.
  --json              For verify: print the result as one JSON document.
  --since SEQ         For export: only records with a seq greater than SEQ. Default: 0
  --follow            For export: keep running and print new records as they are written,
                      until SIGINT or SIGTERM.
  --interval MS       For export --follow: how often to read the store, in milliseconds,
                      from 100 to 60000. Default: 1000
`

/** `hsmgate audit SUBCOMMAND`. */
export async function runAudit(argv: string[], logger: Logger): Promise<number> {
  const [subcommand, ...rest] = argv
  if (subcommand === 'verify') return runAuditVerify(rest, logger)
  if (subcommand === 'export') return runAuditExport(rest, logger)
  throw new CliError(
    `unknown audit subcommand '${subcommand ?? ''}'; use verify or export ` +
      "(run 'hsmgate audit --help')",
    EXIT.usage,
  )
}
