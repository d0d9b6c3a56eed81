import type Database from 'better-sqlite3'

/** State of an approval request. A granted request becomes `used` when its last use is taken. */
export type ApprovalStatus = 'pending' | 'granted' | 'denied' | 'used'

/** One approver's vote on an approval request. */
export interface ApprovalVote {
  approver: string
  vote: 'approve' | 'deny'
  at: string
}

/**
 * A request for M of N approvals. The grant it becomes is bound to the requester, operation,
 * key and the SHA-256 of the request body, may be used `uses` times, and expires.
 */
export interface Approval {
  id: string
  /** SPIFFE ID of the principal that will make the approved request. */
  requester: string
  operation: string
  key: string | null
  /** Hex SHA-256 of the exact request body the grant allows. */
  paramsDigest: string
  /** For a quota extension: the quota's name and the extra requests per window. */
  quota: string | null
  extra: number
  group: string
  required: number
  uses: number
  usesLeft: number
  status: ApprovalStatus
  createdAt: string
  expiresAt: string
  votes: ApprovalVote[]
}

/** Facts a grant must match to be used. */
export interface GrantMatch {
  requester: string
  operation: string
  key: string | null
  paramsDigest: string
}

/** An application that needs an approval for each further request, set by an anomaly rule. */
export interface ApprovalHold {
  app: string
  rule: string
  group: string
  required: number
  createdAt: string
}

interface ApprovalRow {
  id: string
  requester: string
  operation: string
  key_name: string | null
  params_digest: string
  quota: string | null
  extra: number
  group_name: string
  required: number
  uses: number
  uses_left: number
  status: ApprovalStatus
  created_at: string
  expires_at: string
}

/**
 * The SQLite tables of dual control and anomaly detection. Votes, grant use and first-use
 * records each run in one transaction, so two gateway processes sharing the file cannot both
 * take the last use of a grant or both record the same first use.
 */
export class SqliteControls {
  constructor(private readonly db: Database.Database) {}

  createApproval(approval: Omit<Approval, 'votes'>): void {
    this.db
      .prepare(
        `INSERT INTO approvals (id, requester, operation, key_name, params_digest, quota, extra,
           group_name, required, uses, uses_left, status, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        approval.id,
        approval.requester,
        approval.operation,
        approval.key,
        approval.paramsDigest,
        approval.quota,
        approval.extra,
        approval.group,
        approval.required,
        approval.uses,
        approval.usesLeft,
        approval.status,
        approval.createdAt,
        approval.expiresAt,
      )
  }

  /** Returns the approval request with its votes, or undefined for an unknown id. */
  approval(id: string): Approval | undefined {
    const row = this.db.prepare('SELECT * FROM approvals WHERE id = ?').get(id) as
      ApprovalRow | undefined
    return row === undefined ? undefined : this.withVotes(row)
  }

  /** Returns approval requests, newest first, at most `limit`. */
  listApprovals(limit: number): Approval[] {
    const rows = this.db
      .prepare('SELECT * FROM approvals ORDER BY created_at DESC, id LIMIT ?')
      .all(limit) as ApprovalRow[]
    return rows.map((row) => this.withVotes(row))
  }

  /**
   * Records a vote in one transaction. `check` receives the request with its current votes and
   * returns an error code to reject the vote. A deny vote denies the request; the approve vote
   * that reaches `required` grants it. Returns the updated request or the error code.
   */
  vote(
    id: string,
    vote: ApprovalVote,
    check: (approval: Approval) => string | undefined,
  ): Approval | { error: string } {
    return this.db.transaction((): Approval | { error: string } => {
      const approval = this.approval(id)
      if (approval === undefined) return { error: 'approval_not_found' }
      const error = check(approval)
      if (error !== undefined) return { error }
      this.db
        .prepare('INSERT INTO approval_votes (approval_id, approver, vote, at) VALUES (?, ?, ?, ?)')
        .run(id, vote.approver, vote.vote, vote.at)
      const approvals = approval.votes.filter((v) => v.vote === 'approve').length
      let status: ApprovalStatus = 'pending'
      if (vote.vote === 'deny') status = 'denied'
      else if (approvals + 1 >= approval.required) status = 'granted'
      this.db.prepare('UPDATE approvals SET status = ? WHERE id = ?').run(status, id)
      return this.approval(id) as Approval
    })()
  }

  /**
   * Takes one use of a granted, unexpired approval that matches exactly, in one transaction.
   * Returns the approval as it was before the use, or undefined when none matches.
   */
  useGrant(match: GrantMatch, now: string): Approval | undefined {
    return this.db.transaction((): Approval | undefined => {
      const row = this.grantRow(match, now)
      if (row === undefined) return undefined
      const left = row.uses_left - 1
      this.db
        .prepare('UPDATE approvals SET uses_left = ?, status = ? WHERE id = ?')
        .run(left, left === 0 ? 'used' : 'granted', row.id)
      return this.withVotes(row)
    })()
  }

  /** Returns a granted, unexpired approval that matches exactly, without using it. */
  peekGrant(match: GrantMatch, now: string): Approval | undefined {
    const row = this.grantRow(match, now)
    return row === undefined ? undefined : this.withVotes(row)
  }

  private grantRow(match: GrantMatch, now: string): ApprovalRow | undefined {
    return this.db
      .prepare(
        `SELECT * FROM approvals WHERE requester = ? AND operation = ? AND key_name IS ?
           AND params_digest = ? AND status = 'granted' AND uses_left > 0 AND expires_at > ?
         ORDER BY expires_at LIMIT 1`,
      )
      .get(match.requester, match.operation, match.key, match.paramsDigest, now) as
      ApprovalRow | undefined
  }

  /** Returns the extra requests of granted, unexpired quota extensions for requester and quota. */
  quotaExtension(requester: string, quota: string, now: string): number {
    const row = this.db
      .prepare(
        `SELECT COALESCE(SUM(extra), 0) AS extra FROM approvals WHERE requester = ?
           AND operation = 'quota-extension' AND quota = ? AND status = 'granted'
           AND expires_at > ?`,
      )
      .get(requester, quota, now) as { extra: number }
    return row.extra
  }

  /** Records that an application used `value` of `kind`; returns true the first time only. */
  recordFirstUse(app: string, kind: string, value: string, at: string): boolean {
    const result = this.db
      .prepare(
        `INSERT INTO first_uses (app, kind, value, first_seen) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      )
      .run(app, kind, value, at)
    return result.changes === 1
  }

  /** Sets a hold; an existing hold of the application is kept. */
  putHold(hold: ApprovalHold): void {
    this.db
      .prepare(
        `INSERT INTO approval_holds (app, rule, group_name, required, created_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      )
      .run(hold.app, hold.rule, hold.group, hold.required, hold.createdAt)
  }

  hold(app: string): ApprovalHold | undefined {
    const row = this.db.prepare('SELECT * FROM approval_holds WHERE app = ?').get(app) as
      | { app: string; rule: string; group_name: string; required: number; created_at: string }
      | undefined
    if (row === undefined) return undefined
    return {
      app: row.app,
      rule: row.rule,
      group: row.group_name,
      required: row.required,
      createdAt: row.created_at,
    }
  }

  /** Removes the hold of an application; returns false when it had none. */
  clearHold(app: string): boolean {
    return this.db.prepare('DELETE FROM approval_holds WHERE app = ?').run(app).changes === 1
  }

  private withVotes(row: ApprovalRow): Approval {
    const votes = this.db
      .prepare('SELECT approver, vote, at FROM approval_votes WHERE approval_id = ? ORDER BY at')
      .all(row.id) as ApprovalVote[]
    return {
      id: row.id,
      requester: row.requester,
      operation: row.operation,
      key: row.key_name,
      paramsDigest: row.params_digest,
      quota: row.quota,
      extra: row.extra,
      group: row.group_name,
      required: row.required,
      uses: row.uses,
      usesLeft: row.uses_left,
      status: row.status,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      votes,
    }
  }
}
