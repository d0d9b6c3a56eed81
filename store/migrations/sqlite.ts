/**
 * Versioned schema changes for the SQLite store, applied in order inside one transaction each.
 * Never edit a released migration; add a new one.
 */
export const sqliteMigrations: readonly string[] = [
  `CREATE TABLE keys (
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     type TEXT NOT NULL,
     cka_id TEXT NOT NULL UNIQUE,
     label TEXT NOT NULL,
     state TEXT NOT NULL,
     owner TEXT NOT NULL,
     tags TEXT NOT NULL DEFAULT '[]',
     classification TEXT NOT NULL DEFAULT 'internal',
     created_at TEXT NOT NULL,
     PRIMARY KEY (name, version)
   );
   CREATE TABLE applications (
     name TEXT PRIMARY KEY,
     team TEXT NOT NULL,
     hosts TEXT NOT NULL,
     addresses TEXT NOT NULL,
     suspended INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL
   );
   CREATE TABLE audit (
     node TEXT NOT NULL,
     seq INTEGER NOT NULL,
     time TEXT NOT NULL,
     principal TEXT NOT NULL,
     cert_serial TEXT,
     source_address TEXT,
     decision_id TEXT NOT NULL,
     operation TEXT NOT NULL,
     key_name TEXT,
     key_version INTEGER,
     outcome TEXT NOT NULL,
     status INTEGER NOT NULL,
     error_code TEXT,
     policy_ids TEXT NOT NULL,
     reason TEXT,
     request_digest TEXT NOT NULL,
     latency_ms REAL NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     PRIMARY KEY (node, seq)
   );`,
]
