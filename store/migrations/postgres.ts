/**
 * Versioned schema changes for the PostgreSQL store. Version N here makes the same change as
 * version N of the SQLite migrations, in PostgreSQL types: times that queries compare are
 * timestamptz, lists are jsonb, flags are boolean. Never edit a released migration; add one.
 *
 * Columns that the store orders by use COLLATE "C", so that PostgreSQL sorts them byte by byte
 * as SQLite does whatever the database's locale. Audit and checkpoint times stay text because
 * the chain hash and the checkpoint signature cover their exact characters.
 */
export const postgresMigrations: readonly string[] = [
  // 1: keys, applications, the audit chains, and the head of each chain, which appends lock.
  `CREATE TABLE keys (
     name TEXT COLLATE "C" NOT NULL,
     version INTEGER NOT NULL,
     type TEXT NOT NULL,
     cka_id TEXT NOT NULL UNIQUE,
     label TEXT NOT NULL,
     state TEXT NOT NULL,
     owner TEXT NOT NULL,
     tags JSONB NOT NULL DEFAULT '[]',
     classification TEXT NOT NULL DEFAULT 'internal',
     created_at TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (name, version)
   );
   CREATE TABLE applications (
     name TEXT COLLATE "C" PRIMARY KEY,
     team TEXT NOT NULL,
     hosts JSONB NOT NULL,
     addresses JSONB NOT NULL,
     suspended BOOLEAN NOT NULL DEFAULT false,
     created_at TIMESTAMPTZ NOT NULL
   );
   CREATE TABLE audit (
     node TEXT COLLATE "C" NOT NULL,
     seq BIGINT NOT NULL,
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
     latency_ms DOUBLE PRECISION NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     PRIMARY KEY (node, seq)
   );
   CREATE TABLE audit_heads (
     writer TEXT COLLATE "C" PRIMARY KEY,
     seq BIGINT NOT NULL,
     hash TEXT NOT NULL
   );`,
  // 2: issued certificates, enrollment tokens and the newest serial per application and host.
  `CREATE TABLE certificates (
     serial TEXT COLLATE "C" PRIMARY KEY,
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     addresses JSONB NOT NULL,
     not_before TIMESTAMPTZ NOT NULL,
     not_after TIMESTAMPTZ NOT NULL,
     key_protection TEXT NOT NULL,
     status TEXT NOT NULL,
     revoked_at TIMESTAMPTZ,
     revocation_reason TEXT,
     issued_at TIMESTAMPTZ NOT NULL
   );
   CREATE INDEX certificates_by_app ON certificates (app, host);
   CREATE TABLE enrollment_tokens (
     token_hash TEXT PRIMARY KEY,
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     addresses JSONB NOT NULL,
     expires_at TIMESTAMPTZ NOT NULL,
     created_at TIMESTAMPTZ NOT NULL,
     used_at TIMESTAMPTZ
   );
   CREATE TABLE newest_serials (
     app TEXT NOT NULL,
     host TEXT NOT NULL,
     serial TEXT NOT NULL,
     not_before TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (app, host)
   );`,
  // 3: signed audit checkpoints.
  `CREATE TABLE audit_checkpoints (
     writer TEXT COLLATE "C" NOT NULL,
     seq BIGINT NOT NULL,
     head_hash TEXT NOT NULL,
     time TEXT NOT NULL,
     signer TEXT COLLATE "C" NOT NULL,
     key_id TEXT NOT NULL,
     public_key TEXT NOT NULL,
     signature TEXT NOT NULL,
     PRIMARY KEY (writer, seq, signer)
   );`,
  // 4: dual control approvals, first uses seen by anomaly rules, approval holds.
  `CREATE TABLE approvals (
     id TEXT COLLATE "C" PRIMARY KEY,
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
     created_at TIMESTAMPTZ NOT NULL,
     expires_at TIMESTAMPTZ NOT NULL
   );
   CREATE INDEX approvals_by_requester ON approvals (requester, operation, status);
   CREATE TABLE approval_votes (
     approval_id TEXT NOT NULL,
     approver TEXT NOT NULL,
     vote TEXT NOT NULL,
     at TIMESTAMPTZ NOT NULL,
     cast_order BIGSERIAL NOT NULL,
     PRIMARY KEY (approval_id, approver)
   );
   CREATE TABLE first_uses (
     app TEXT NOT NULL,
     kind TEXT NOT NULL,
     value TEXT NOT NULL,
     first_seen TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (app, kind, value)
   );
   CREATE TABLE approval_holds (
     app TEXT PRIMARY KEY,
     rule TEXT NOT NULL,
     group_name TEXT NOT NULL,
     required INTEGER NOT NULL,
     created_at TIMESTAMPTZ NOT NULL
   );`,
  // 5: TPM attestation: single-use nonces for TPM2_Certify and registered attestation keys.
  `CREATE TABLE tpm_nonces (
     nonce_hash TEXT PRIMARY KEY,
     issued_at TIMESTAMPTZ NOT NULL,
     expires_at TIMESTAMPTZ NOT NULL,
     used_at TIMESTAMPTZ
   );
   CREATE TABLE tpm_attestation_keys (
     name TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     public_area TEXT NOT NULL,
     registered_at TIMESTAMPTZ NOT NULL
   );`,
  // 6: TPM: the requester of each attestation nonce, for the limits on outstanding nonces, and
  // the credential activation challenges of the EK certificate trust path.
  `ALTER TABLE tpm_nonces ADD COLUMN source TEXT NOT NULL DEFAULT '';
   CREATE INDEX tpm_nonces_by_source ON tpm_nonces (source, expires_at);
   CREATE INDEX tpm_nonces_by_expiry ON tpm_nonces (expires_at);
   CREATE TABLE tpm_activation_challenges (
     id TEXT PRIMARY KEY,
     secret_hash TEXT NOT NULL,
     ak_name TEXT NOT NULL,
     nonce_hash TEXT NOT NULL,
     ek_fingerprint TEXT NOT NULL,
     issued_at TIMESTAMPTZ NOT NULL,
     expires_at TIMESTAMPTZ NOT NULL,
     used_at TIMESTAMPTZ
   );
   CREATE INDEX tpm_activation_challenges_by_expiry ON tpm_activation_challenges (expires_at);`,
  // 7: quota counters that every gateway node shares, charged by quota_charge(), and an index
  // for the per-second poll of the newest revocation.
  `CREATE TABLE quota_windows (
     counter TEXT COLLATE "C" PRIMARY KEY,
     stamps BIGINT[] NOT NULL,
     expires_ms BIGINT NOT NULL
   );
   CREATE INDEX quota_windows_by_expiry ON quota_windows (expires_ms);
   CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE status = 'revoked';
   CREATE FUNCTION quota_charge(counters TEXT[], limits INTEGER[], windows BIGINT[],
     now_ms BIGINT) RETURNS BIGINT[]
   LANGUAGE plpgsql SET search_path FROM CURRENT AS $body$
   DECLARE
     waits BIGINT[] := '{}';
     live BIGINT[];
     n INTEGER;
   BEGIN
     -- Creates each row or takes its lock, in counter order: an INSERT ... ON CONFLICT DO
     -- UPDATE locks an existing row too, so charges that share counters queue behind each
     -- other without deadlock, and the sweep (SKIP LOCKED) cannot delete a row in use.
     INSERT INTO quota_windows (counter, stamps, expires_ms)
       SELECT DISTINCT c, '{}'::BIGINT[], 0::BIGINT FROM unnest(counters) AS c ORDER BY c
       ON CONFLICT (counter) DO UPDATE SET counter = excluded.counter;
     FOR i IN 1 .. coalesce(array_length(counters, 1), 0) LOOP
       SELECT coalesce(array_agg(s ORDER BY s), '{}') INTO live
         FROM quota_windows q, unnest(q.stamps) AS s
         WHERE q.counter = counters[i] AND s > now_ms - windows[i];
       n := coalesce(array_length(live, 1), 0);
       IF n < limits[i] THEN
         waits := waits || 0::BIGINT;
       ELSE
         -- The request at position n - limit + 1 must leave the window before another fits.
         waits := waits || greatest(1, live[n - limits[i] + 1] + windows[i] - now_ms);
       END IF;
     END LOOP;
     IF EXISTS (SELECT 1 FROM unnest(waits) AS w WHERE w > 0) THEN
       RETURN waits;
     END IF;
     FOR i IN 1 .. coalesce(array_length(counters, 1), 0) LOOP
       UPDATE quota_windows q
         SET stamps = (SELECT coalesce(array_agg(s ORDER BY s), '{}') FROM unnest(q.stamps) AS s
                       WHERE s > now_ms - windows[i]) || now_ms,
             expires_ms = greatest(q.expires_ms, now_ms + windows[i])
         WHERE q.counter = counters[i];
     END LOOP;
     RETURN waits;
   END
   $body$;`,
]
