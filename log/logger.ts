import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/**
 * Creates the root logger of one process. It writes JSON lines to stderr so that stdout stays
 * free for command results. HSMGATE_LOG_LEVEL overrides the configured level.
 */
export function createLogger(component: string, level: LevelWithSilent = 'info'): Logger {
  const fromEnv = process.env.HSMGATE_LOG_LEVEL as LevelWithSilent | undefined
  return pino(
    {
      name: 'hsmgate',
      level: fromEnv ?? level,
      base: { component, pid: process.pid },
      redact: {
        paths: ['pin', '*.pin', 'secret', '*.secret', 'key_pem', 'plaintext', '*.plaintext'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  )
}
