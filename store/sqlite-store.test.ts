import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { storeSuite } from '../test/helpers/store-suite.js'
import { sqliteMigrations } from './migrations/sqlite.js'
import { SqliteStore } from './sqlite-store.js'

storeSuite('sqlite store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-store-'))
  const file = join(dir, 'store.db')
  return {
    open: async () => new SqliteStore(file),
    migrationVersions: async () => {
      const db = new Database(file, { readonly: true })
      try {
        const rows = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all()
        return (rows as { version: number }[]).map((row) => row.version)
      } finally {
        db.close()
      }
    },
    migrationCount: sqliteMigrations.length,
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})
