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
  `CREATE TABLE certificates (
     serial TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     addresses TEXT NOT NULL,
     not_before TEXT NOT NULL,
     not_after TEXT NOT NULL,
     key_protection TEXT NOT NULL,
     status TEXT NOT NULL,
     revoked_at TEXT,
     revocation_reason TEXT,
     issued_at TEXT NOT NULL
   );
   CREATE INDEX certificates_by_app ON certificates (app, host);
   CREATE TABLE enrollment_tokens (
     token_hash TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     addresses TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     created_at TEXT NOT NULL,
     used_at TEXT
   );
   CREATE TABLE newest_serials (
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     serial TEXT NOT NULL,
     not_before TEXT NOT NULL,
     PRIMARY KEY (app, host)
   );`,
]
