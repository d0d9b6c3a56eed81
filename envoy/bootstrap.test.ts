import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../config/load.js'
import { projectRoot } from '../config/project-root.js'
import { renderBootstrap } from './bootstrap.js'
import {
  sdsPaths,
  servingSecret,
  validationSecret,
  writeSdsFile,
} from '../crypto-backend/pki/sds-files.js'
import { resolveEnvoyBinary } from './envoy-binary.js'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'hsmgate-envoy-'))

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function selfSignedPair(): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'server.crt')
  const key = join(dir, 'server.key')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
  ])
  return { cert, key }
}

/** Envoy requires the SDS files to exist when it loads the bootstrap. */
async function writeSdsFiles(cert: string, key: string): Promise<void> {
  const crl = join(dir, 'empty.crl')
  await run('openssl', [
    'ca',
    '-gencrl',
    '-keyfile',
    key,
    '-cert',
    cert,
    '-out',
    crl,
    '-config',
    await caConfig(),
  ])
  const paths = sdsPaths(dir)
  writeSdsFile(paths.serving, servingSecret(readFileSync(cert, 'utf8'), readFileSync(key, 'utf8')))
  writeSdsFile(
    paths.validation,
    validationSecret(readFileSync(cert, 'utf8'), readFileSync(crl, 'utf8')),
  )
}

/** A minimal `openssl ca` configuration, enough for -gencrl. */
async function caConfig(): Promise<string> {
  const index = join(dir, 'index.txt')
  writeFileSync(index, '')
  const path = join(dir, 'ca.cnf')
  writeFileSync(
    path,
    `[ca]\ndefault_ca = d\n[d]\ndatabase = ${index}\ndefault_md = sha256\ndefault_crl_days = 1\n`,
  )
  return path
}

function testConfig(cert: string, key: string): LoadedConfig {
  return {
    file: join(dir, 'hsmgate.yaml'),
    dir,
    node_id: 'node-1',
    trust_domain: 'hsmgate.demo',
    runtime_dir: dir,
    log_level: 'info',
    listen: { address: '127.0.0.1', port: 18443 },
    envoy: {
      stats_port: 19901,
      max_request_bytes: 65536,
      max_request_headers_kb: 32,
      request_timeout: '30s',
    },
    tls: { trust_bundle: cert, server_cert_lifetime: '24h', server_dns_names: ['localhost'] },
    authz: {
      policies: join(dir, 'policies'),
      decision_secret: join(dir, 'd.key'),
      trusted_proxies: [],
      clone_detection: { suspend: false },
    },
    backend: { decision_secret: join(dir, 'd.key'), decision_max_age_ms: 5000 },
    hsm: { environment: {}, members: [] },
    store: { sqlite: join(dir, 'x.db') },
    pki: { ca_cert: cert, ca_key_id: 'ab', crl_lifetime: '24h', client_lifetime: '1h' },
    probe: { cert, key },
    metrics: {},
  }
}

describe('envoy bootstrap', () => {
  it('passes envoy --mode validate', async () => {
    const { cert, key } = await selfSignedPair()
    await writeSdsFiles(cert, key)
    const path = join(dir, 'envoy.json')
    writeFileSync(
      path,
      JSON.stringify(renderBootstrap(testConfig(cert, key), join(dir, 'access.log'))),
    )
    const envoy = resolveEnvoyBinary(projectRoot())
    const { stdout, stderr } = await run(envoy, [
      '--mode',
      'validate',
      '-c',
      path,
      '--disable-hot-restart',
    ])
    expect(stdout + stderr).toMatch(/configuration '.*envoy.json' OK/)
  })

  it('keeps the controls that must not be weakened', async () => {
    const { cert, key } = await selfSignedPair()
    const text = JSON.stringify(renderBootstrap(testConfig(cert, key), join(dir, 'access.log')))
    expect(text).toContain('"require_client_certificate":true')
    expect(text).toContain('"failure_mode_allow":false')
    expect(text).toContain('"allow_partial_message":false')
    expect(text).toContain('"forward_client_cert_details":"SANITIZE_SET"')
    expect(text).toContain('"path_with_escaped_slashes_action":"REJECT_REQUEST"')
    expect(text).toContain('"tls_minimum_protocol_version":"TLSv1_2"')
    expect(text).toContain('"tls_certificate_sds_secret_configs"')
    expect(text).toContain('"validation_context_sds_secret_config"')
    expect(text).toContain(
      `"admin":{"address":{"pipe":{"path":${JSON.stringify(join(dir, 'envoy-admin.sock'))},"mode":384}}}`,
    )
  })

  it('puts no TCP address on the admin interface', async () => {
    const { cert, key } = await selfSignedPair()
    const bootstrap = renderBootstrap(testConfig(cert, key), join(dir, 'access.log')) as {
      admin: { address: Record<string, unknown> }
    }
    expect(Object.keys(bootstrap.admin.address)).toEqual(['pipe'])
  })
})
