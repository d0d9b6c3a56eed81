/** Exit codes the hsmgate command uses; scripts may rely on them. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** The configuration or on-disk state is unusable (sysexits EX_CONFIG). */
  config: 78,
} as const

/** An error the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'CliError'
  }
}
