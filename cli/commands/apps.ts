import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import { CliError, EXIT } from '../cli-error.js'
import { openKeysSession } from './keys-session.js'

export const appsHelp = `Usage: hsmgate apps <list|suspend NAME|resume NAME> [--dir DIR]

Lists the registered applications, and suspends or resumes one. A suspended application is
denied every request from the next request on, through every gateway process that shares the
store; resume lifts the suspension and any approval hold an anomaly rule set. Results go to
stdout as JSON.

Subcommands:
  list           Print every application with its team, hosts, addresses and state.
  suspend NAME   Deny every request of the application until it is resumed.
  resume NAME    Allow the application's requests again and clear its approval hold.

Options:
  --dir DIR   Directory of the setup made by 'hsmgate init'. Default: ./var
`

/** \`hsmgate apps list|suspend|resume\`. */
export async function runApps(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { dir: { type: 'string', default: 'var' } },
  })
  const [subcommand, name, ...extra] = positionals
  if (extra.length > 0 || !['list', 'suspend', 'resume'].includes(subcommand ?? '')) {
    throw new CliError(
      `unknown subcommand '${positionals.join(' ')}'; use list, suspend NAME or resume NAME`,
      EXIT.usage,
    )
  }
  const session = await openKeysSession(values.dir, logger, false)
  try {
    const store = session.store
    if (subcommand === 'list') {
      const apps = []
      for (const app of await store.listApplications()) {
        apps.push({ ...app, approval_hold: (await store.controls.hold(app.name)) !== undefined })
      }
      process.stdout.write(JSON.stringify(apps, null, 2) + '\n')
      return EXIT.ok
    }
    if (name === undefined)
      throw new CliError(`apps ${subcommand} needs an application NAME`, EXIT.usage)
    const app = await store.application(name)
    if (app === undefined) {
      const known = (await store.listApplications()).map((a) => a.name).join(', ') || 'none'
      throw new CliError(
        `application '${name}' is not registered (registered: ${known}); run 'hsmgate apps list'`,
      )
    }
    const suspended = subcommand === 'suspend'
    await store.putApplication({ ...app, suspended })
    const holdCleared = suspended ? false : await store.controls.clearHold(name)
    const from = app.suspended ? 'suspended' : 'active'
    const to = suspended ? 'suspended' : 'active'
    logger.info({ app: name, hold_cleared: holdCleared }, `application state: ${from} -> ${to}`)
    const result = {
      app: name,
      suspended,
      previously_suspended: app.suspended,
      hold_cleared: holdCleared,
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return EXIT.ok
  } finally {
    await session.close()
  }
}
