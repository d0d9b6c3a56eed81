import { z } from 'zod'
import { redactUrl } from '../store/postgres/connection-url.js'

const durationPattern = /^\d+(ms|s|m|h|d)$/

const duration = (field: string) =>
  z
    .string()
    .regex(durationPattern, `${field} must be a duration such as 500ms or 5s`)
    .refine((text) => !/^0+(ms|s|m|h|d)$/.test(text), `${field} must be longer than zero`)

/** Checks a PostgreSQL URL; the message shows the URL with its password replaced. */
function checkPostgresUrl(url: string, context: z.RefinementCtx): void {
  const expected =
    'expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (postgresql:// works too)'
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    context.addIssue({ code: 'custom', message: `is not a URL; ${expected}` })
    return
  }
  const shown = redactUrl(url)
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    context.addIssue({ code: 'custom', message: `'${shown}' has the wrong scheme; ${expected}` })
  } else if (parsed.hostname === '') {
    context.addIssue({ code: 'custom', message: `'${shown}' names no host; ${expected}` })
  } else if (parsed.pathname.length <= 1) {
    context.addIssue({ code: 'custom', message: `'${shown}' names no database; ${expected}` })
  }
}

/** A PostgreSQL database that several gateway nodes share. */
export const postgresStoreSchema = z
  .object({
    /** Connection URL. A password in it never appears in logs or errors. */
    url: z.string().min(1).superRefine(checkPostgresUrl),
    /** Maximum open connections of each gateway process. */
    pool_size: z.number().int().min(1).max(200).default(10),
    /** Bound on opening one connection, such as '2s'. */
    connect_timeout: duration('connect_timeout').default('2s'),
    /**
     * Bound on the wait for a pooled connection, opening one included. A store call fails with
     * store_unavailable after it, so it should stay below Envoy's 2 s budget for authorization.
     */
    acquire_timeout: duration('acquire_timeout').default('1s'),
    /** Bound on one statement, lock waits included. */
    query_timeout: duration('query_timeout').default('10s'),
    /** Schema of the tables, created when missing. Absent: the server's search_path. */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lowercase letters, digits and underscores')
      .optional(),
  })
  .strict()

/** The gateway's state store: one SQLite file, or a PostgreSQL database that nodes share. */
export const storeSchema = z
  .object({
    /** Path of the SQLite file, for a single gateway node. */
    sqlite: z.string().min(1).optional(),
    postgres: postgresStoreSchema.optional(),
  })
  .strict()
  .refine((store) => (store.sqlite === undefined) !== (store.postgres === undefined), {
    message:
      'set exactly one of store.sqlite (a file for one node) and store.postgres (a database ' +
      'that several nodes share)',
  })

export type StoreConfig = z.infer<typeof storeSchema>
export type PostgresStoreConfig = z.infer<typeof postgresStoreSchema>
