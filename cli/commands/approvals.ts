import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { PERSON_PATH } from '../../authz/approval-rules.js'
import { openIssuingCa } from '../../crypto-backend/pki/issuing-ca.js'
import { durationMs } from '../../crypto-backend/pki/duration.js'
import { normalizeSerial } from '../../store/certificate-serial.js'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { apiClient, callApi } from './approvals-client.js'
import { openKeysSession } from './keys-session.js'

export const approvalsHelp = `Usage: hsmgate approvals <subcommand> [options]

Dual control: an application requests approvals for one exact request, approvers from the
group that authz.approvals names approve or deny it, and the grant then lets that request
through the gateway (once, or --uses times) until it expires. Every call goes to the gateway
over mutual TLS with the caller's own certificate. Results go to stdout as JSON.

Subcommands:
  request --operation OP [--key NAME] (--digest HEX | --body-file FILE) [--uses N] [--ttl D]
      Ask for approval of OP on NAME with exactly this request body. --body-file hashes the
      file; --digest takes the SHA-256 that the approval_required error named.
  request --operation quota-extension --quota NAME --extra N [--ttl D]
      Ask for N more requests per window on the caller's quota NAME until the grant expires.
  list                 Print the requests the caller may see: its own, or its groups'.
  show ID              Print one request with its votes.
  approve ID           Approve a request; needs a person certificate of the request's group.
  deny ID              Deny a request; one deny ends it.
  identity NAME --out DIR [--dir DIR] [--lifetime D]
      Issue a client certificate for the person NAME (spiffe://DOMAIN/person/NAME) with the
      setup's HSM CA and write DIR/NAME.crt and DIR/NAME.key. Runs on the gateway host.

Options:
  --gateway URL   Gateway base URL, such as https://127.0.0.1:8443.
  --ca FILE       PEM file of the CA that issued the gateway's serving certificate.
  --cert FILE     The caller's client certificate (PEM).
  --tls-key FILE  The caller's private key (PEM).
  --uses N        How many requests the grant allows, 1 to 1000. Default: 1
  --ttl D         How long the request and grant live, such as 30m. Default: 15m, at most
                  authz.approvals.max_ttl.
  --lifetime D    Lifetime of an identity certificate. Default: 8h
`

const OPTIONS = {
  gateway: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  'tls-key': { type: 'string' },
  operation: { type: 'string' },
  key: { type: 'string' },
  digest: { type: 'string' },
  'body-file': { type: 'string' },
  uses: { type: 'string' },
  ttl: { type: 'string' },
  quota: { type: 'string' },
  extra: { type: 'string' },
  out: { type: 'string' },
  dir: { type: 'string', default: 'var' },
  lifetime: { type: 'string', default: '8h' },
} as const

type Values = { [K in keyof typeof OPTIONS]?: string }

/** `hsmgate approvals request|list|show|approve|deny|identity`. */
export async function runApprovals(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: OPTIONS,
  })
  const [subcommand, id, ...extra] = positionals
  if (extra.length > 0) throw new CliError(`unexpected argument '${extra[0]}'`, EXIT.usage)
  let result: unknown
  switch (subcommand) {
    case 'request':
      result = await callApi(tlsClient(values), 'POST', '/v1/approvals', requestBody(values))
      break
    case 'list':
      result = await callApi(tlsClient(values), 'GET', '/v1/approvals')
      break
    case 'show':
    case 'approve':
    case 'deny': {
      if (id === undefined)
        throw new CliError(`approvals ${subcommand} needs an approval ID`, EXIT.usage)
      const path = `/v1/approvals/${encodeURIComponent(id)}`
      result =
        subcommand === 'show'
          ? await callApi(tlsClient(values), 'GET', path)
          : await callApi(tlsClient(values), 'POST', `${path}/${subcommand}`, {})
      break
    }
    case 'identity':
      result = await issueIdentity(id, values, logger)
      break
    default:
      throw new CliError(
        `unknown subcommand '${subcommand ?? ''}'; use request, list, show, approve, deny or identity`,
        EXIT.usage,
      )
  }
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  return EXIT.ok
}

function tlsClient(values: Values) {
  return apiClient({
    gateway: values.gateway,
    ca: values.ca,
    cert: values.cert,
    key: values['tls-key'],
  })
}

function requestBody(values: Values): Record<string, unknown> {
  if (values.operation === undefined) throw new CliError('request needs --operation OP', EXIT.usage)
  const ttl = values.ttl === undefined ? {} : { ttl: values.ttl }
  if (values.operation === 'quota-extension') {
    if (values.quota === undefined || values.extra === undefined) {
      throw new CliError('a quota-extension request needs --quota NAME and --extra N', EXIT.usage)
    }
    return {
      operation: values.operation,
      quota: values.quota,
      extra: integer(values.extra, '--extra'),
      ...ttl,
    }
  }
  if ((values.digest === undefined) === (values['body-file'] === undefined)) {
    throw new CliError('set exactly one of --digest and --body-file', EXIT.usage)
  }
  const digest =
    values.digest ??
    createHash('sha256')
      .update(readFileSync(values['body-file'] as string))
      .digest('hex')
  return {
    operation: values.operation,
    ...(values.key === undefined ? {} : { key: values.key }),
    params_digest: digest,
    ...(values.uses === undefined ? {} : { uses: integer(values.uses, '--uses') }),
    ...ttl,
  }
}

function integer(text: string, option: string): number {
  if (!/^\d{1,9}$/.test(text))
    throw new CliError(`${option} must be a whole number, got '${text}'`, EXIT.usage)
  return Number(text)
}

async function issueIdentity(
  name: string | undefined,
  values: Values,
  logger: Logger,
): Promise<unknown> {
  if (name === undefined || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) {
    throw new CliError(
      `identity needs a person NAME of lowercase letters and digits, got '${name ?? ''}'`,
      EXIT.usage,
    )
  }
  if (values.out === undefined) throw new CliError('identity needs --out DIR', EXIT.usage)
  let lifetimeMs: number
  try {
    lifetimeMs = durationMs(values.lifetime ?? '8h')
  } catch (error) {
    throw new CliError(`--lifetime: ${(error as Error).message}`, EXIT.usage)
  }
  const session = await openKeysSession(values.dir ?? 'var', logger, true)
  try {
    const ca = await openIssuingCa(session.config, session.cluster!)
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const spiffeId = `spiffe://${session.config.trust_domain}${PERSON_PATH}${name}`
    const leaf = await ca.issuer.issue({
      commonName: name,
      purpose: 'client',
      altNames: { uri: [spiffeId] },
      lifetimeMs,
      publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    })
    mkdirSync(values.out, { recursive: true, mode: 0o700 })
    const certPath = join(values.out, `${name}.crt`)
    const keyPath = join(values.out, `${name}.key`)
    writeFileSync(certPath, leaf.toString('pem') + '\n')
    writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    const serial = normalizeSerial(leaf.serialNumber)
    // Recorded like an application's certificate, so that 'hsmgate certs revoke --serial' works.
    await session.store.putCertificate({
      serial,
      app: `person:${name}`,
      host: '',
      addresses: [],
      notBefore: leaf.notBefore.toISOString(),
      notAfter: leaf.notAfter.toISOString(),
      keyProtection: 'software',
      status: 'active',
      revokedAt: null,
      revocationReason: null,
      issuedAt: new Date().toISOString(),
    })
    return {
      person: name,
      principal: spiffeId,
      serial,
      cert: certPath,
      key: keyPath,
      not_after: leaf.notAfter.toISOString(),
    }
  } finally {
    await session.close()
  }
}
