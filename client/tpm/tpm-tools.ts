import { execFile } from 'node:child_process'
import { needsFlush, tctiEnv } from './tcti.js'
import { tpmOutputHint } from './tpm-response-hint.js'

/** Upper bound on one tpm2-tools or openssl run; key creation on a slow TPM takes seconds. */
const TOOL_TIMEOUT_MS = 60_000
const MAX_OUTPUT_BYTES = 1024 * 1024

/** A tpm2-tools or openssl run that failed, with the tool's own error output. */
export class TpmToolError extends Error {
  constructor(
    readonly tool: string,
    message: string,
  ) {
    super(message)
    this.name = 'TpmToolError'
  }
}

/** Output of one tool run. */
export interface ToolOutput {
  readonly stdout: Buffer
  readonly stderr: string
}

/**
 * Runs one program with arguments as an array, never through a shell, with the TCTI in its
 * environment. `input` goes to its stdin. Throws TpmToolError with the tool's stderr.
 */
export function runTool(
  tool: string,
  args: readonly string[],
  tcti: string,
  input?: Buffer,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ToolOutput> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      tool,
      args,
      {
        env: { ...tctiEnv(tcti), ...extraEnv },
        timeout: TOOL_TIMEOUT_MS,
        maxBuffer: MAX_OUTPUT_BYTES,
        encoding: 'buffer',
      },
      (error, stdout, stderr) => {
        const text = stderr.toString('utf8').trim()
        if (error === null) return resolve({ stdout, stderr: text })
        const detail = text.split('\n').slice(-3).join('; ') || error.message
        const hint = tpmOutputHint(text)
        const message = `${tool} ${args[0] ?? ''} failed: ${detail}`
        reject(new TpmToolError(tool, hint === undefined ? message : `${message}; ${hint}`))
      },
    )
    child.stdin?.end(input ?? Buffer.alloc(0))
  })
}

/**
 * Runs a tpm2-tools command, then flushes transient objects and sessions when the TCTI has no
 * resource manager: without one, a TPM such as swtpm has only three object slots.
 */
export async function runTpmTool(
  tool: string,
  args: readonly string[],
  tcti: string,
  input?: Buffer,
): Promise<ToolOutput> {
  try {
    return await runTool(tool, args, tcti, input)
  } finally {
    if (needsFlush(tcti)) {
      await runTool('tpm2_flushcontext', ['-t'], tcti).catch(() => undefined)
      await runTool('tpm2_flushcontext', ['-s'], tcti).catch(() => undefined)
    }
  }
}
