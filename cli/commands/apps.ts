import { parseArgs } from 'node:util'
import type { Logger } from '../../log/logger.js'
import type { Application, Store } from '../../store/store.js'
import { CliError, EXIT } from '../cli-error.js'
import { parseApplication } from './app-input.js'
import { openKeysSession } from './keys-session.js'

export const appsHelp = `Usage: hsmgate apps <subcommand> [options]

Registers and lists applications, and suspends or resumes one. A suspended application is
denied every request from the next request on, through every gateway process that shares the
store; resume lifts the suspension and any approval hold an anomaly rule set. Results go to
stdout as JSON.

Subcommands:
  create NAME --team TEAM --host HOST[,HOST...] --address IP[,IP...]
                 Register a new application. Its certificates carry the URI SAN
                 spiffe://TRUST_DOMAIN/app/NAME, and it may create keys named NAME-...
                 An existing NAME is rejected.
  show NAME      Print one application.
  list           Print every application with its team, hosts, addresses and state.
  suspend NAME   Deny every request of the application until it is resumed.
  resume NAME    Allow the application's requests again and clear its approval hold.

Options:
  --dir DIR              Directory of the setup made by 'hsmgate init'. Default: ./var
  --team TEAM            Owning team, a policy attribute (principal.team). Only for create.
  --host HOST[,HOST...]  DNS names of the hosts the application runs on. Only for create.
  --address IP[,IP...]   IP addresses of those hosts. Policies compare them with the request's
                         source address. Only for create.
`

const SUBCOMMANDS = ['create', 'show', 'list', 'suspend', 'resume']

/** The JSON form of an application, with the snake_case keys of the rest of the output. */
function appJson(app: Application, approvalHold: boolean) {
  return {
    name: app.name,
    team: app.team,
    hosts: app.hosts,
    addresses: app.addresses,
    suspended: app.suspended,
    approval_hold: approvalHold,
    created_at: app.createdAt,
  }
}

/** Returns the application or throws a CliError that lists the registered names. */
async function registered(store: Store, name: string): Promise<Application> {
  const app = await store.application(name)
  if (app !== undefined) return app
  const known = (await store.listApplications()).map((a) => a.name).join(', ') || 'none'
  throw new CliError(
    `application '${name}' is not registered (registered: ${known}); run 'hsmgate apps list'`,
  )
}

/** `hsmgate apps create|show|list|suspend|resume`. */
export async function runApps(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: 'var' },
      team: { type: 'string' },
      host: { type: 'string' },
      address: { type: 'string' },
    },
  })
  const [subcommand, name, ...extra] = positionals
  if (extra.length > 0 || !SUBCOMMANDS.includes(subcommand ?? '')) {
    throw new CliError(
      `unknown subcommand '${positionals.join(' ')}'; use create NAME, show NAME, list, ` +
        'suspend NAME or resume NAME',
      EXIT.usage,
    )
  }
  if (subcommand !== 'list' && name === undefined) {
    throw new CliError(`apps ${subcommand} needs an application NAME`, EXIT.usage)
  }
  // Usage errors are reported before the store is opened.
  const created =
    subcommand === 'create'
      ? parseApplication({ name: name!, ...values }, new Date().toISOString())
      : undefined
  const session = await openKeysSession(values.dir, logger, false)
  try {
    const result = await runSubcommand(session.store, subcommand!, name, created, logger)
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return EXIT.ok
  } finally {
    await session.close()
  }
}

async function runSubcommand(
  store: Store,
  subcommand: string,
  name: string | undefined,
  created: Application | undefined,
  logger: Logger,
): Promise<unknown> {
  if (subcommand === 'list') {
    const apps = []
    for (const app of await store.listApplications()) {
      apps.push(appJson(app, (await store.controls.hold(app.name)) !== undefined))
    }
    return apps
  }
  if (created !== undefined) {
    // NOTE: the existence check and the insert are two statements; two operators creating the
    // same name at the same moment could both pass the check, and the second insert updates
    // the first. The store interface has no insert-if-absent for applications.
    if ((await store.application(created.name)) !== undefined) {
      throw new CliError(
        `application '${created.name}' is already registered; run 'hsmgate apps show ` +
          `${created.name}' to see it, or choose another NAME`,
      )
    }
    await store.putApplication(created)
    logger.info({ app: created.name, team: created.team }, 'application registered')
    return appJson(created, false)
  }
  const app = await registered(store, name!)
  if (subcommand === 'show') {
    return appJson(app, (await store.controls.hold(app.name)) !== undefined)
  }
  const suspended = subcommand === 'suspend'
  await store.putApplication({ ...app, suspended })
  const holdCleared = suspended ? false : await store.controls.clearHold(app.name)
  const from = app.suspended ? 'suspended' : 'active'
  const to = suspended ? 'suspended' : 'active'
  logger.info({ app: app.name, hold_cleared: holdCleared }, `application state: ${from} -> ${to}`)
  return {
    app: app.name,
    suspended,
    previously_suspended: app.suspended,
    hold_cleared: holdCleared,
  }
}
