import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type * as x509 from '@peculiar/x509'
import type { MemberConfig } from '../../config/schema.js'
import { HsmCluster, initializeToken, randomPin } from '../../crypto-backend/hsm/index.js'
import { CertificateIssuer, type SubjectAltNames } from '../../crypto-backend/pki/index.js'
import type { Logger } from '../../log/logger.js'
import { SqliteStore, type KeyType } from '../../store/index.js'
import { CliError, EXIT } from '../cli-error.js'
import {
  appPrincipal,
  DEMO_APPS,
  gatewayConfig,
  probePrincipal,
  softhsmConf,
} from './demo-files.js'
import { demoCrlUrl, issuedRecord } from './demo-pki.js'
import { writePrivateFile, writePublicFile } from './secret-files.js'
import { starterPolicies } from './starter-policies.js'
import { stateLayout, type StateLayout } from './state-layout.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so'
const MEMBERS = [
  { name: 'hsm-a', label: 'hsmgate-a' },
  { name: 'hsm-b', label: 'hsmgate-b' },
]

// NOTE: demo certificates live longer than the design's short-lived certificates, because
// renewal by the client agent does not exist yet; `hsmgate init --force` issues new ones.
const LIFETIME = { root: 5 * 365 * DAY, client: 30 * DAY }

export interface InitOptions {
  dir: string
  force: boolean
  listenAddress: string
  listenPort: number
  statsPort: number
  enrollPort: number
  /** SPIFFE trust domain of every principal. */
  trustDomain: string
  /** Enrol the demo applications 'payments' and 'reporting' with their keys. */
  demoApps: boolean
  logger: Logger
}

/**
 * Creates a complete embedded gateway under `dir`: two SoftHSM2 tokens as a two-member
 * cluster, a demo root CA whose key is generated in the HSM, the gateway's certificate, two
 * demo applications with certificates and keys, starter policies and hsmgate.yaml. On failure it
 * removes what it wrote, so no half-written setup remains.
 */
export async function createEmbeddedSetup(options: InitOptions): Promise<StateLayout> {
  const layout = stateLayout(options.dir)
  prepareDirectory(layout.root, options.force)
  try {
    await populate(layout, options)
    return layout
  } catch (error) {
    rmSync(layout.root, { recursive: true, force: true })
    throw error
  }
}

function prepareDirectory(root: string, force: boolean): void {
  if (existsSync(root) && readdirSync(root).length > 0) {
    if (!force) {
      throw new CliError(
        `${root} already contains files; pass --force to delete them (HSM tokens, keys and ` +
          'certificates included) and create a new setup, or choose another --dir',
        EXIT.config,
      )
    }
    rmSync(root, { recursive: true, force: true })
  }
  mkdirSync(root, { recursive: true, mode: 0o755 })
}

async function populate(layout: StateLayout, options: InitOptions): Promise<void> {
  const { logger } = options
  const { members, soPins } = await createTokens(layout)
  writePrivateFile(layout.decisionSecret, randomBytes(32))
  mkdirSync(layout.runtime, { recursive: true, mode: 0o700 })
  mkdirSync(layout.logs, { recursive: true, mode: 0o700 })

  const cluster = await HsmCluster.open(members, {
    logger,
    environment: { SOFTHSM2_CONF: layout.softhsmConf },
  })
  const store = new SqliteStore(layout.store)
  try {
    await cluster.provisionClusterKek({ soPins })
    logger.info('trusted cluster key-encryption key provisioned on both members')

    const caKeyId = randomBytes(16)
    await cluster.generateEcKeyPair({ id: caKeyId, label: 'hsmgate:ca:root' }, 'P-256')
    const caCert = await CertificateIssuer.createRoot(
      cluster,
      caKeyId,
      'hsmgate demo root CA',
      LIFETIME.root,
    )
    writePublicFile(layout.caCert, caCert.toString('pem') + '\n')
    writePublicFile(layout.trustBundle, caCert.toString('pem') + '\n')
    logger.info({ subject: caCert.subject }, 'demo root CA created with its key in the HSM')

    // The backend issues the gateway's serving certificate at every start; see tls-maintainer.
    const issuer = new CertificateIssuer(cluster, caKeyId, caCert, {
      crlUrl: demoCrlUrl(options.listenAddress, options.enrollPort),
    })
    await issueLeaf(issuer, 'client', 'hsmgate probe', layout.probeCert, layout.probeKey, {
      uri: [probePrincipal(options.trustDomain)],
    })
    for (const app of options.demoApps ? DEMO_APPS : []) {
      await enrolDemoApp(layout, cluster, store, issuer, caCert, app, options.trustDomain)
      logger.info({ app }, 'demo application created')
    }

    mkdirSync(layout.policies, { recursive: true, mode: 0o755 })
    for (const [name, text] of Object.entries(starterPolicies())) {
      writePublicFile(join(layout.policies, name), text)
    }
    writePublicFile(
      layout.config,
      gatewayConfig({
        listenAddress: options.listenAddress,
        listenPort: options.listenPort,
        statsPort: options.statsPort,
        enrollPort: options.enrollPort,
        members: MEMBERS,
        caKeyId: caKeyId.toString('hex'),
        crlUrl: demoCrlUrl(options.listenAddress, options.enrollPort),
        trustDomain: options.trustDomain,
      }),
    )
  } finally {
    await store.close()
    await cluster.close()
  }
}

async function createTokens(
  layout: StateLayout,
): Promise<{ members: MemberConfig[]; soPins: Record<string, string> }> {
  writePublicFile(layout.softhsmConf, softhsmConf(layout))
  mkdirSync(layout.tokens, { recursive: true, mode: 0o700 })
  process.env.SOFTHSM2_CONF = layout.softhsmConf

  const members: MemberConfig[] = []
  const soPins: Record<string, string> = {}
  for (const member of MEMBERS) {
    const userPin = randomPin()
    const soPin = randomPin()
    await initializeToken(SOFTHSM_MODULE, member.label, soPin, userPin)
    writePrivateFile(layout.pinFile(member.name), userPin + '\n')
    writePrivateFile(layout.soPinFile(member.name), soPin + '\n')
    soPins[member.name] = soPin
    members.push({
      name: member.name,
      module: SOFTHSM_MODULE,
      token_label: member.label,
      pin_file: layout.pinFile(member.name),
      pool_size: 2,
      operation_timeout_ms: 10_000,
    })
  }
  return { members, soPins }
}

/** Generates a software key pair, has the CA certify it, and writes both files. */
async function issueLeaf(
  issuer: CertificateIssuer,
  purpose: 'server' | 'client',
  commonName: string,
  certPath: string,
  keyPath: string,
  altNames: SubjectAltNames,
): Promise<x509.X509Certificate> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const cert = await issuer.issue({
    commonName,
    purpose,
    altNames,
    lifetimeMs: LIFETIME.client,
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
  })
  writePrivateFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())
  writePublicFile(certPath, cert.toString('pem') + '\n')
  return cert
}

async function enrolDemoApp(
  layout: StateLayout,
  cluster: HsmCluster,
  store: SqliteStore,
  issuer: CertificateIssuer,
  caCert: x509.X509Certificate,
  app: string,
  trustDomain: string,
): Promise<void> {
  const dir = layout.appDir(app)
  const cert = await issueLeaf(issuer, 'client', app, `${dir}/client.crt`, `${dir}/client.key`, {
    uri: [appPrincipal(trustDomain, app)],
  })
  writePublicFile(`${dir}/ca.crt`, caCert.toString('pem') + '\n')
  await store.putApplication({
    name: app,
    team: 'demo',
    hosts: ['localhost'],
    addresses: ['127.0.0.1', '::1'],
    suspended: false,
    createdAt: new Date().toISOString(),
  })
  // Recorded so that 'hsmgate certs revoke' can revoke it.
  await store.putCertificate(issuedRecord(cert, app, 'localhost', ['127.0.0.1', '::1']))

  const keys: Array<{ name: string; type: KeyType }> = [
    { name: `${app}-signing`, type: 'ec-p256' },
    { name: `${app}-data`, type: 'aes-256' },
  ]
  for (const key of keys) {
    const ckaId = randomBytes(16)
    const label = `hsmgate:${key.name}:v1`
    if (key.type === 'ec-p256') {
      await cluster.generateEcKeyPair({ id: ckaId, label }, 'P-256')
    } else {
      await cluster.generateAesKey({ id: ckaId, label }, 256)
    }
    await store.putKeyVersion({
      name: key.name,
      version: 1,
      type: key.type,
      ckaId: ckaId.toString('hex'),
      label,
      state: 'enabled',
      owner: app,
      tags: ['demo'],
      classification: 'confidential',
      createdAt: new Date().toISOString(),
    })
  }
}
