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
  `CREATE TABLE audit_checkpoints (
     writer TEXT NOT NULL,
     seq INTEGER NOT NULL,
     head_hash TEXT NOT NULL,
     time TEXT NOT NULL,
     signer TEXT NOT NULL,
     key_id TEXT NOT NULL,
     public_key TEXT NOT NULL,
     signature TEXT NOT NULL,
     PRIMARY KEY (writer, seq, signer)
   );`,
  // 4: dual control approvals, first uses seen by anomaly rules, approval holds.
  `CREATE TABLE approvals (
     id TEXT PRIMARY KEY,
     requester TEXT NOT NULL,
     operation TEXT NOT NULL,
     key_name TEXT,
     params_digest TEXT NOT NULL,
     quota TEXT,
     extra INTEGER NOT NULL DEFAULT 0,
     group_name TEXT NOT NULL,
     required INTEGER NOT NULL,
     uses INTEGER NOT NULL,
     uses_left INTEGER NOT NULL,
     status TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL
   );
   CREATE INDEX approvals_by_requester ON approvals (requester, operation, status);
   CREATE TABLE approval_votes (
     approval_id TEXT NOT NULL,
     approver TEXT NOT NULL,
     vote TEXT NOT NULL,
     at TEXT NOT NULL,
     PRIMARY KEY (approval_id, approver)
   );
   CREATE TABLE first_uses (
     app TEXT NOT NULL,
     kind TEXT NOT NULL,
     value TEXT NOT NULL,
     first_seen TEXT NOT NULL,
     PRIMARY KEY (app, kind, value)
   );
   CREATE TABLE approval_holds (
     app TEXT PRIMARY KEY,
     rule TEXT NOT NULL,
     group_name TEXT NOT NULL,
     required INTEGER NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // TPM attestation: single-use nonces for TPM2_Certify and operator-registered attestation keys.
  `CREATE TABLE tpm_nonces (
     nonce_hash TEXT PRIMARY KEY,
     issued_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     used_at TEXT
   );
   CREATE TABLE tpm_attestation_keys (
     name TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     public_area TEXT NOT NULL,
     registered_at TEXT NOT NULL
   );`,
  // TPM: the requester of each attestation nonce, for the limits on outstanding nonces, and the
  // credential activation challenges of the EK certificate trust path.
  `ALTER TABLE tpm_nonces ADD COLUMN source TEXT NOT NULL DEFAULT '';
   CREATE INDEX tpm_nonces_by_source ON tpm_nonces (source, expires_at);
   CREATE INDEX tpm_nonces_by_expiry ON tpm_nonces (expires_at);
   CREATE TABLE tpm_activation_challenges (
     id TEXT PRIMARY KEY,
     secret_hash TEXT NOT NULL,
     ak_name TEXT NOT NULL,
     nonce_hash TEXT NOT NULL,
     ek_fingerprint TEXT NOT NULL,
     issued_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     used_at TEXT
   );
   CREATE INDEX tpm_activation_challenges_by_expiry ON tpm_activation_challenges (expires_at);`,
  // 7: the quota counter table and revocation index of PostgreSQL migration 7. A SQLite gateway
  // is one node and counts quotas in memory, so the table stays empty; it exists so that
  // version 7 means the same schema in both stores.
  `CREATE TABLE quota_windows (
     counter TEXT PRIMARY KEY,
     stamps TEXT NOT NULL,
     expires_ms INTEGER NOT NULL
   );
   CREATE INDEX quota_windows_by_expiry ON quota_windows (expires_ms);
   CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE status = 'revoked';`,
]
