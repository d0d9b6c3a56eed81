import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import type { LoadedConfig } from '../config/load.js'
import { projectRoot } from '../config/project-root.js'
import { renderBootstrap } from './bootstrap.js'
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
      admin_port: 19901,
      max_request_bytes: 65536,
      max_request_headers_kb: 32,
      request_timeout: '30s',
    },
    tls: { server_cert: cert, server_key: key, trust_bundle: cert },
    authz: { policies: join(dir, 'policies'), decision_secret: join(dir, 'd.key') },
    backend: { decision_secret: join(dir, 'd.key'), decision_max_age_ms: 5000 },
    hsm: { environment: {}, members: [] },
    store: { sqlite: join(dir, 'x.db') },
    pki: { ca_cert: cert, ca_key_id: 'ab' },
    probe: { cert, key },
  }
}

describe('envoy bootstrap', () => {
  it('passes envoy --mode validate', async () => {
    const { cert, key } = await selfSignedPair()
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
    expect(text).toMatch(/"admin":\{"address":\{"socket_address":\{"address":"127\.0\.0\.1"/)
  })
})
