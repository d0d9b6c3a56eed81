import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** A software TPM behind tpm2-abrmd on a private D-Bus session bus, for one test file. */
export interface SoftwareTpm {
  /** TCTI for tpm2-tools, tpm2-openssl and the agent: the resource manager. */
  readonly tcti: string
  /** Environment that points TPM clients at the private bus and the TCTI. */
  readonly env: NodeJS.ProcessEnv
  /** PEM of the swtpm local CA's root, which signed the EK certificate's issuer. */
  readonly manufacturerCaPem: string
  /** PEM bundle of the root and the intermediate that issued the EK certificate. */
  readonly manufacturerCasPem: string
  /** Files of the intermediate CA, to issue EK certificates for keys that are not the EK. */
  readonly localCa: { readonly cert: string; readonly key: string }
  stop(): Promise<void>
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Returns a free loopback port P with P+1 also free: the swtpm TCTI uses P+1 for control. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000)
    if ((await portFree(port)) && (await portFree(port + 1))) return port
  }
  throw new Error('found no two adjacent free ports for swtpm')
}

/** Manufactures a TPM state with EK certificates from a local CA in `dir`. */
async function manufacture(dir: string): Promise<void> {
  const ca = join(dir, 'localca')
  mkdirSync(ca)
  writeFileSync(
    join(dir, 'localca.conf'),
    [
      `statedir = ${ca}`,
      `signingkey = ${ca}/signkey.pem`,
      `issuercert = ${ca}/issuercert.pem`,
      `certserial = ${ca}/certserial`,
      '',
    ].join('\n'),
  )
  writeFileSync(
    join(dir, 'setup.conf'),
    [
      'create_certs_tool = /usr/bin/swtpm_localca',
      `create_certs_tool_config = ${join(dir, 'localca.conf')}`,
      'create_certs_tool_options = /etc/swtpm-localca.options',
      '',
    ].join('\n'),
  )
  mkdirSync(join(dir, 'state'))
  await execFileAsync(
    'swtpm_setup',
    [
      '--tpm2',
      '--tpmstate',
      join(dir, 'state'),
      '--create-ek-cert',
      '--config',
      join(dir, 'setup.conf'),
      '--overwrite',
    ],
    { timeout: 60_000 },
  )
}

/** Reads one line from a child's stdout, such as the bus address dbus-daemon prints. */
function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`${what} printed nothing in 10 s`)), 10_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const end = text.indexOf('\n')
      if (end >= 0) {
        clearTimeout(timer)
        resolve(text.slice(0, end).trim())
      }
    })
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)))
  })
}

async function waitForTpm(env: NodeJS.ProcessEnv): Promise<void> {
  let last: unknown
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await execFileAsync('tpm2_getcap', ['properties-fixed'], { env, timeout: 10_000 })
      return
    } catch (error) {
      last = error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`the TPM did not answer through tpm2-abrmd: ${(last as Error).message}`)
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/**
 * Starts swtpm with a fresh state (EK certificates from a local CA), a private D-Bus session
 * bus and tpm2-abrmd in front of swtpm, because TLS through tpm2-openssl needs more than the
 * three object slots that swtpm has without a resource manager.
 */
export async function startSoftwareTpm(): Promise<SoftwareTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-swtpm-'))
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) await stopChild(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await manufacture(dir)
    const port = await freePortPair()
    const swtpm = spawn(
      'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${join(dir, 'state')}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: 'ignore' },
    )
    children.push(swtpm)
    const bus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    children.push(bus)
    const address = await firstLine(bus, 'dbus-daemon')
    const env = {
      ...process.env,
      DBUS_SESSION_BUS_ADDRESS: address,
      TPM2TOOLS_TCTI: 'tabrmd:bus_type=session',
      TPM2OPENSSL_TCTI: 'tabrmd:bus_type=session',
    }
    const abrmd = spawn(
      'tpm2-abrmd',
      // The test runs as root on the build machines; abrmd refuses root without --allow-root.
      [
        '--session',
        `--tcti=swtpm:host=127.0.0.1,port=${port}`,
        '--flush-all',
        ...(process.getuid?.() === 0 ? ['--allow-root'] : []),
      ],
      { env, stdio: 'ignore' },
    )
    children.push(abrmd)
    await waitForTpm(env)
    const manufacturerCaPem = readFileSync(
      join(dir, 'localca', 'swtpm-localca-rootca-cert.pem'),
      'utf8',
    )
    const localCa = {
      cert: join(dir, 'localca', 'issuercert.pem'),
      key: join(dir, 'localca', 'signkey.pem'),
    }
    const manufacturerCasPem = manufacturerCaPem + readFileSync(localCa.cert, 'utf8')
    return {
      tcti: 'tabrmd:bus_type=session',
      env,
      manufacturerCaPem,
      manufacturerCasPem,
      localCa,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}
