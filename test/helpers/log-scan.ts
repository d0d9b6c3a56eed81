import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Returns what of a setup's secrets appears in its logs: the PINs and SO PINs, the decision
 * secret (as base64 and hex), and any private key PEM. `extra` holds output that was not written
 * to the setup's logs directory, such as the stderr of `hsmgate up`. An empty list means the
 * logs are clean.
 */
export function secretsInLogs(dir: string, extra = ''): string[] {
  const logDir = join(dir, 'logs')
  const logs = existsSync(logDir)
    ? readdirSync(logDir).map((file) => readFileSync(join(logDir, file), 'utf8'))
    : []
  const all = [...logs, extra].join('\n')
  const found: string[] = []
  const secretDir = join(dir, 'secrets')
  const secrets: Array<[string, string]> = []
  for (const file of existsSync(secretDir) ? readdirSync(secretDir) : []) {
    const value = readFileSync(join(secretDir, file))
    if (file.endsWith('pin')) secrets.push([file, value.toString('utf8').trim()])
    else
      secrets.push(
        [`${file} as base64`, value.toString('base64')],
        [`${file} as hex`, value.toString('hex')],
      )
  }
  for (const [what, value] of secrets) {
    // A value this short could occur by chance; the setup's secrets are all longer.
    if (value.length >= 8 && all.includes(value)) found.push(`${what} of ${dir}`)
  }
  if (all.includes('PRIVATE KEY')) found.push(`a private key PEM in the logs of ${dir}`)
  return found
}
