import type Database from 'better-sqlite3'
import type {
  Approval,
  ApprovalHold,
  ApprovalQuery,
  ApprovalStatus,
  ApprovalVote,
  ControlRecords,
  GrantMatch,
  PendingLimit,
} from './store.js'

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
export class SqliteControls implements ControlRecords {
  constructor(private readonly db: Database.Database) {}

  /** Counts and inserts in one IMMEDIATE transaction, so the limit also applies across processes. */
  async createApproval(approval: Omit<Approval, 'votes'>, limit?: PendingLimit): Promise<boolean> {
    const transaction = this.db.transaction((): boolean => {
      if (
        limit !== undefined &&
        this.pendingOf(approval.requester, limit.now) >= limit.maxPending
      ) {
        return false
      }
      this.insertApproval(approval)
      return true
    })
    return transaction.immediate()
  }

  private pendingOf(requester: string, now: string): number {
    const row = this.db
      .prepare(
        `SELECT COUNT(*) AS pending FROM approvals
         WHERE requester = ? AND status = 'pending' AND expires_at > ?`,
      )
      .get(requester, now) as { pending: number }
    return row.pending
  }

  private insertApproval(approval: Omit<Approval, 'votes'>): void {
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

  async approval(id: string): Promise<Approval | undefined> {
    return this.approvalNow(id)
  }

  private approvalNow(id: string): Approval | undefined {
    const row = this.db.prepare('SELECT * FROM approvals WHERE id = ?').get(id) as
      ApprovalRow | undefined
    return row === undefined ? undefined : this.withVotes(row)
  }

  async listApprovals(query: ApprovalQuery): Promise<Approval[]> {
    const groups = [...query.groups]
    const inGroups = groups.length === 0 ? '' : ` OR group_name IN (${groups.map(() => '?')})`
    const rows = this.db
      .prepare(
        `SELECT * FROM approvals WHERE requester = ?${inGroups}
         ORDER BY CASE WHEN status = 'pending' AND expires_at > ? THEN 0 ELSE 1 END,
           created_at DESC, id
         LIMIT ? OFFSET ?`,
      )
      .all(query.requester, ...groups, query.now, query.limit, query.offset ?? 0) as ApprovalRow[]
    return rows.map((row) => this.withVotes(row))
  }

  /** Records a vote in one IMMEDIATE transaction, with `check` called inside it. */
  async vote(
    id: string,
    vote: ApprovalVote,
    check: (approval: Approval) => string | undefined,
  ): Promise<Approval | { error: string }> {
    const transaction = this.db.transaction((): Approval | { error: string } => {
      const approval = this.approvalNow(id)
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
      return this.approvalNow(id) as Approval
    })
    return transaction.immediate()
  }

  /** Takes one use of a matching grant in one IMMEDIATE transaction. */
  async useGrant(match: GrantMatch, now: string): Promise<Approval | undefined> {
    const transaction = this.db.transaction((): Approval | undefined => {
      const row = this.grantRow(match, now)
      if (row === undefined) return undefined
      const left = row.uses_left - 1
      this.db
        .prepare('UPDATE approvals SET uses_left = ?, status = ? WHERE id = ?')
        .run(left, left === 0 ? 'used' : 'granted', row.id)
      return this.withVotes(row)
    })
    return transaction.immediate()
  }

  async peekGrant(match: GrantMatch, now: string): Promise<Approval | undefined> {
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

  async quotaExtension(requester: string, quota: string, now: string): Promise<number> {
    const row = this.db
      .prepare(
        `SELECT COALESCE(SUM(extra), 0) AS extra FROM approvals WHERE requester = ?
           AND operation = 'quota-extension' AND quota = ? AND status = 'granted'
           AND expires_at > ?`,
      )
      .get(requester, quota, now) as { extra: number }
    return row.extra
  }

  /** Inserts the first use with ON CONFLICT DO NOTHING, one statement and so atomic. */
  async recordFirstUse(app: string, kind: string, value: string, at: string): Promise<boolean> {
    const result = this.db
      .prepare(
        `INSERT INTO first_uses (app, kind, value, first_seen) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      )
      .run(app, kind, value, at)
    return result.changes === 1
  }

  async putHold(hold: ApprovalHold): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO approval_holds (app, rule, group_name, required, created_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      )
      .run(hold.app, hold.rule, hold.group, hold.required, hold.createdAt)
  }

  async hold(app: string): Promise<ApprovalHold | undefined> {
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

  async clearHold(app: string): Promise<boolean> {
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
