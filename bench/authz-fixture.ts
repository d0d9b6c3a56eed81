import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { starterPolicies } from '../cli/init/starter-policies.js'
import { SqliteStore } from '../store/sqlite-store.js'

/** A temporary authz setup: starter policies, a store with one application and key, a cert. */
export interface BenchSetup {
  readonly dir: string
  readonly policyDir: string
  readonly store: SqliteStore
  /** URL-encoded PEM, as Envoy sends it. */
  readonly certificate: string
}

/** Creates the setup under a new directory in `parent`. */
export async function benchSetup(parent: string): Promise<BenchSetup> {
  const dir = mkdtempSync(join(parent, 'hsmgate-bench-'))
  const policyDir = join(dir, 'policies')
  mkdirSync(policyDir)
  for (const [name, text] of Object.entries(starterPolicies())) {
    writeFileSync(join(policyDir, name), text)
  }
  const store = new SqliteStore(join(dir, 'store', 'hsmgate.db'))
  const createdAt = new Date().toISOString()
  await store.putApplication({
    name: 'payments',
    team: 'demo',
    hosts: ['localhost'],
    addresses: ['127.0.0.1'],
    suspended: false,
    createdAt,
  })
  await store.putKeyVersion({
    name: 'payments-signing',
    version: 1,
    type: 'ec-p256',
    ckaId: '01',
    label: 'hsmgate:payments-signing:v1',
    state: 'enabled',
    owner: 'payments',
    tags: ['demo'],
    classification: 'confidential',
    createdAt,
  })
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
      .concat(['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2'])
      .concat(['-subj', '/CN=payments'])
      .concat(['-addext', 'subjectAltName=URI:spiffe://hsmgate.demo/app/payments']),
    { stdio: 'pipe', timeout: 10_000 },
  )
  const certificate = encodeURIComponent(readFileSync(join(dir, 'c.pem'), 'utf8'))
  return { dir, policyDir, store, certificate }
}

/** A sign request with a small JSON body, as Envoy's CheckRequest carries it. */
export function signRequest(certificate: string): object {
  const body = Buffer.from('{"message":"aGVsbG8gaHNtZ2F0ZQ=="}')
  return {
    attributes: {
      source: { certificate, address: { socket_address: { address: '127.0.0.1' } } },
      request: {
        http: {
          method: 'POST',
          path: '/v1/keys/payments-signing/sign',
          headers: { 'content-type': 'application/json' },
          raw_body: body,
        },
      },
    },
  }
}

/** Percentiles in milliseconds, rounded to microseconds. */
export function percentiles(samples: number[]): Record<string, number> {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
  const round = (v: number | undefined) => Math.round((v ?? 0) * 1000) / 1000
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), max: round(at(1)) }
}
