import { stat } from 'node:fs/promises'
import type { Logger } from '../log/logger.js'
import { PolicyEngine } from './policy-engine.js'
import { loadPolicyDir, policyFiles } from './policy-load.js'

/** The policy set in force, replaced as a whole when the directory changes. */
export interface PolicyWatcher {
  current(): PolicyEngine
  /** Re-reads the directory now if any .cedar file changed. Resolves when that attempt ends. */
  reloadIfChanged(): Promise<void>
  close(): void
}

export interface WatchPoliciesOptions {
  readonly logger: Logger
  /** How often the directory is checked for changes, in milliseconds. Default: 1000. */
  readonly intervalMs?: number
}

const RELOAD_FAILED = 'policies not reloaded; keeping the last valid policy set'

/** Loads and parses a policy directory into an engine. Throws PolicyError. */
export function loadPolicyEngine(dir: string): PolicyEngine {
  return new PolicyEngine(loadPolicyDir(dir))
}

/**
 * Loads `dir` now, throwing PolicyError if it is invalid, and then polls it. When the set of
 * .cedar files or their metadata changes and then stays unchanged for one more poll, the whole
 * directory is loaded and validated again, and a
 * valid set replaces the engine in one assignment, so every request sees either the old or the
 * new set. A bad edit keeps the last good set and logs why, once per change. Polling is used
 * because editors and deploy tools replace files by rename, which ends an fs.watch.
 */
export function watchPolicies(dir: string, options: WatchPoliciesOptions): PolicyWatcher {
  const { logger } = options
  let engine = loadPolicyEngine(dir)
  let lastSignature: string | undefined
  let pendingSignature: string | undefined
  let running: Promise<void> | undefined

  const attempt = async (): Promise<void> => {
    let signature: string
    try {
      signature = await directorySignature(dir)
    } catch (error) {
      signature = `failed: ${(error as Error).message}`
    }
    if (signature === lastSignature) return
    if (lastSignature === undefined) {
      lastSignature = signature
      return
    }
    // A changed directory is loaded only once it looks the same on two checks in a row, so a
    // file caught half-written (a truncated forbid is still valid Cedar) is never loaded.
    if (signature !== pendingSignature) {
      pendingSignature = signature
      return
    }
    lastSignature = signature
    pendingSignature = undefined
    try {
      const next = loadPolicyEngine(dir)
      if (next.version === engine.version) return
      engine = next
      logger.info(
        { dir, policies: next.policies.size, policy_version: next.version },
        'policies reloaded',
      )
    } catch (error) {
      logger.error({ dir, err: error, policy_version: engine.version }, RELOAD_FAILED)
    }
  }

  const reloadIfChanged = (): Promise<void> => {
    running ??= attempt().finally(() => {
      running = undefined
    })
    return running
  }
  void reloadIfChanged()
  const timer = setInterval(() => void reloadIfChanged(), options.intervalMs ?? 1_000)
  timer.unref()
  return { current: () => engine, reloadIfChanged, close: () => clearInterval(timer) }
}

async function directorySignature(dir: string): Promise<string> {
  const parts: string[] = []
  for (const file of policyFiles(dir)) {
    const s = await stat(file)
    parts.push(`${file}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`)
  }
  return parts.join('|')
}
