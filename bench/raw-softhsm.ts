import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import pkcs11js from 'pkcs11js'
import { summarize, type PhaseResult } from './stats.js'

/**
 * Raw SoftHSM2 throughput: each worker thread loads the module, opens its own session on the
 * token, makes session keys and runs one operation in a loop with the synchronous pkcs11js
 * calls, which is the fastest way a single thread can drive the library.
 */

export type BenchOperation = 'ecdsa-p256-sign' | 'rsa-2048-sign' | 'aes-256-gcm-encrypt-1k'

interface WorkerInput {
  module: string
  label: string
  pin: string
}

const DIGEST = Buffer.alloc(32, 7)
const PLAINTEXT = Buffer.alloc(1024, 1)
const TEMPLATE_TOKEN = { type: pkcs11js.CKA_TOKEN, value: false }

function openSession(input: WorkerInput): { p: pkcs11js.PKCS11; session: pkcs11js.Handle } {
  const p = new pkcs11js.PKCS11()
  p.load(input.module)
  try {
    p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  } catch (error) {
    // Worker threads share the process's copy of the library; the first one initializes it.
    if (!String(error).includes('CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw error
  }
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === input.label)
  if (slot === undefined) throw new Error(`token ${input.label} not found`)
  const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  try {
    p.C_Login(session, pkcs11js.CKU_USER, input.pin)
  } catch (error) {
    if (!String(error).includes('CKR_USER_ALREADY_LOGGED_IN')) throw error
  }
  return { p, session }
}

/** Returns a function that runs the operation once on the session. */
function prepare(p: pkcs11js.PKCS11, session: pkcs11js.Handle, operation: BenchOperation) {
  if (operation === 'aes-256-gcm-encrypt-1k') {
    const key = p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      TEMPLATE_TOKEN,
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
    ])
    const out = Buffer.alloc(PLAINTEXT.length + 16)
    return () => {
      const parameter = {
        type: pkcs11js.CK_PARAMS_AES_GCM_v240,
        iv: Buffer.alloc(12, 3),
        aad: Buffer.alloc(0),
        ivBits: 96,
        tagBits: 128,
      }
      p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter }, key)
      p.C_Encrypt(session, PLAINTEXT, out)
    }
  }
  const rsa = operation === 'rsa-2048-sign'
  const pair = p.C_GenerateKeyPair(
    session,
    { mechanism: rsa ? pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN },
    rsa
      ? [
          TEMPLATE_TOKEN,
          { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        ]
      : [
          TEMPLATE_TOKEN,
          { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
        ],
    [
      TEMPLATE_TOKEN,
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
    ],
  )
  const mechanism = rsa
    ? {
        mechanism: pkcs11js.CKM_RSA_PKCS_PSS,
        parameter: {
          type: pkcs11js.CK_PARAMS_RSA_PSS,
          hashAlg: pkcs11js.CKM_SHA256,
          mgf: pkcs11js.CKG_MGF1_SHA256,
          saltLen: 32,
        },
      }
    : { mechanism: pkcs11js.CKM_ECDSA }
  const out = Buffer.alloc(512)
  return () => {
    p.C_SignInit(session, mechanism, pair.privateKey)
    p.C_Sign(session, DIGEST, out)
  }
}

interface Job {
  operation: BenchOperation
  seconds: number
}

/** Runs one job on the worker's session; the session stays open for the next job. */
function runJob(p: pkcs11js.PKCS11, session: pkcs11js.Handle, job: Job) {
  const once = prepare(p, session, job.operation)
  const latencies: number[] = []
  const begin = performance.now()
  const deadline = begin + job.seconds * 1000
  for (let i = 0; i < 10_000_000; i += 1) {
    const start = performance.now()
    if (start >= deadline) break
    once()
    latencies.push(performance.now() - start)
  }
  return { latencies, seconds: (performance.now() - begin) / 1000 }
}

if (!isMainThread) {
  // The worker lives for every phase: a worker thread that exits unloads its pkcs11js instance,
  // which finalizes the library and closes the sessions of the other threads.
  const { p, session } = openSession(workerData as WorkerInput)
  parentPort?.on('message', (job: Job) => parentPort?.postMessage(runJob(p, session, job)))
}

/** Two or more worker threads, each with its own session on the token. */
export class RawBench {
  private constructor(private readonly workers: Worker[]) {}

  static start(input: WorkerInput, threads: number): RawBench {
    const url = new URL(import.meta.url)
    return new RawBench(
      Array.from({ length: threads }, () => new Worker(url, { workerData: input })),
    )
  }

  /** Runs `operation` on every thread at once for `seconds` and summarizes all operations. */
  async run(operation: BenchOperation, seconds: number): Promise<PhaseResult> {
    const results = await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<{ latencies: number[]; seconds: number }>((resolve, reject) => {
            worker.once('message', resolve)
            worker.once('error', reject)
            worker.postMessage({ operation, seconds })
          }),
      ),
    )
    const elapsed = Math.max(...results.map((r) => r.seconds))
    return summarize(
      results.flatMap((r) => r.latencies),
      elapsed,
      0,
    )
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()))
  }
}
