import { existsSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import { auditSettings } from '../../crypto-backend/audit/audit-settings.js'
import { TrustedAuditKeys } from '../../store/audit-checkpoint.js'
import { parseReceipt, ReceiptError } from '../../store/audit-receipt.js'
import { proveReceipt } from '../../store/audit-receipt-proof.js'
import { verifyWriter, type WriterVerification } from '../../store/audit-verify.js'
import type { Store } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'
import { auditSourceOptions, openAuditSource } from './audit-source.js'

/** Exit code of `verify --receipt` when the record is intact but no checkpoint covers it yet. */
export const EXIT_NOT_COVERED = 3

/** `hsmgate audit verify`: checks the chains, or one receipt with --receipt. */
export async function runAuditVerify(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...auditSourceOptions,
      'public-key': { type: 'string', multiple: true },
      writer: { type: 'string' },
      receipt: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const source = await openAuditSource(values)
  try {
    const keyFiles = values['public-key'] ?? [auditSettings(source.config).publicKeysFile]
    const trusted = new TrustedAuditKeys()
    for (const file of keyFiles) loadTrustedKeys(file, trusted)
    if (values.receipt !== undefined) {
      return await verifyReceipt(source.store, trusted, values.receipt, values.json)
    }
    const writers =
      values.writer === undefined ? await source.store.auditWriters() : [values.writer]
    const results: WriterVerification[] = []
    for (const writer of writers) results.push(await verifyWriter(source.store, writer, trusted))
    return report(results, values.json)
  } finally {
    await source.store.close()
  }
}

/** Adds the PEM public keys of `file` to `trusted`; throws CliError when it has none. */
function loadTrustedKeys(file: string, trusted: TrustedAuditKeys): void {
  if (!existsSync(file)) {
    throw new CliError(
      `audit public key file ${file} does not exist; start the backend once to create it, or ` +
        'pass --public-key FILE',
      EXIT.config,
    )
  }
  let added: number
  try {
    added = trusted.addPem(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new CliError(`cannot read audit public keys from ${file}: ${(error as Error).message}`)
  }
  if (added === 0) {
    throw new CliError(`${file} contains no PEM public key; pass the audit public key file`)
  }
}

function report(results: WriterVerification[], json: boolean): number {
  const problems = results.flatMap((result) => result.problems)
  if (json) {
    process.stdout.write(JSON.stringify({ ok: problems.length === 0, writers: results }) + '\n')
    return problems.length === 0 ? EXIT.ok : EXIT.failure
  }
  for (const result of results) process.stdout.write(writerLine(result) + '\n')
  const first = problems[0]
  if (first === undefined) {
    process.stdout.write(`ok: ${results.length} writers verified\n`)
    return EXIT.ok
  }
  for (const problem of problems) {
    process.stdout.write(`FAIL ${problem.writer} seq ${problem.seq}: ${problem.message}\n`)
  }
  process.stdout.write(`first bad record: writer ${first.writer} seq ${first.seq}\n`)
  return EXIT.failure
}

function writerLine(result: WriterVerification): string {
  const state = result.problems.length === 0 ? 'ok' : 'FAILED'
  const uncovered = result.headSeq - result.coveredSeq
  const coverage =
    result.coveredSeq === 0
      ? 'no signed checkpoint yet'
      : `newest matching signed checkpoint at seq ${result.coveredSeq}`
  const tail =
    uncovered > 0
      ? `; ${uncovered} records after it are not yet covered, so their removal would only ` +
        'show after the next checkpoint'
      : ''
  return `${state} ${result.writer}: ${result.records} records verified, ${coverage}${tail}`
}

async function verifyReceipt(
  store: Store,
  trusted: TrustedAuditKeys,
  value: string,
  json: boolean,
): Promise<number> {
  const text = value.trimStart().startsWith('{') ? value : readReceiptFile(value)
  let receipt
  try {
    receipt = parseReceipt(text.trim())
  } catch (error) {
    if (error instanceof ReceiptError) throw new CliError(error.message, EXIT.usage)
    throw error
  }
  const proof = await proveReceipt(store, receipt, trusted)
  if (json) process.stdout.write(JSON.stringify({ receipt, ...proof }) + '\n')
  else process.stdout.write(`${proof.status}: ${proof.message}\n`)
  if (proof.status === 'covered') return EXIT.ok
  return proof.status === 'not_covered' ? EXIT_NOT_COVERED : EXIT.failure
}

function readReceiptFile(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new CliError(
      `cannot read receipt file ${path}: ${(error as Error).message}; pass a file or the ` +
        'receipt JSON itself',
      EXIT.usage,
    )
  }
}
