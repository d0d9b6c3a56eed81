import type pg from 'pg'
import type {
  Approval,
  ApprovalHold,
  ApprovalQuery,
  ApprovalStatus,
  ApprovalVote,
  ControlRecords,
  GrantMatch,
  PendingLimit,
} from '../store.js'
import type { PostgresPool } from './postgres-pool.js'

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

interface HoldRow {
  app: string
  rule: string
  group_name: string
  required: number
  created_at: string
}

/** Either a pool, which runs each query on any connection, or one transaction's client. */
type Queryable = Pick<pg.PoolClient, 'query'>

/**
 * Takes one use of the matching grant that expires first in one statement. The subquery locks
 * the chosen row, and the outer conditions are checked again after any wait for that lock, so
 * two callers racing for the last use cannot both take it.
 *
 * NOTE: when the chosen grant is used up while this statement waits for its lock, the
 * statement takes no use, even if another matching grant has uses left. The caller is denied.
 */
const USE_GRANT = `
  UPDATE approvals a SET uses_left = a.uses_left - 1,
    status = CASE WHEN a.uses_left = 1 THEN 'used' ELSE 'granted' END
  WHERE a.id = (
      SELECT id FROM approvals WHERE requester = $1 AND operation = $2
        AND key_name IS NOT DISTINCT FROM $3 AND params_digest = $4 AND status = 'granted'
        AND uses_left > 0 AND expires_at > $5
      ORDER BY expires_at LIMIT 1 FOR UPDATE)
    AND a.status = 'granted' AND a.uses_left > 0
  RETURNING a.*`

const GRANT_ROW = `
  SELECT * FROM approvals WHERE requester = $1 AND operation = $2
    AND key_name IS NOT DISTINCT FROM $3 AND params_digest = $4 AND status = 'granted'
    AND uses_left > 0 AND expires_at > $5
  ORDER BY expires_at LIMIT 1`

/** First key of the advisory lock that serializes the pending count and insert per requester. */
const PENDING_LOCK_CLASS = 0x61707072 // 'appr'

function grantParams(match: GrantMatch, now: string): unknown[] {
  return [match.requester, match.operation, match.key, match.paramsDigest, now]
}

/** Dual control approvals, approval holds and first-use records in PostgreSQL. */
export class PostgresControls implements ControlRecords {
  constructor(private readonly pool: PostgresPool) {}

  /**
   * Counts and inserts in one transaction under an advisory lock keyed by the requester, so
   * concurrent requests of one requester on any node are counted one after the other.
   */
  createApproval(approval: Omit<Approval, 'votes'>, limit?: PendingLimit): Promise<boolean> {
    return this.pool.transaction(async (client) => {
      if (limit !== undefined) {
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
          PENDING_LOCK_CLASS,
          approval.requester,
        ])
        const pending = await client.query<{ n: number }>(
          `SELECT COUNT(*)::int AS n FROM approvals
           WHERE requester = $1 AND status = 'pending' AND expires_at > $2`,
          [approval.requester, limit.now],
        )
        if (pending.rows[0]!.n >= limit.maxPending) return false
      }
      await insertApproval(client, approval)
      return true
    })
  }

  approval(id: string): Promise<Approval | undefined> {
    return this.pool.withClient((client) => loadApproval(client, id))
  }

  listApprovals(query: ApprovalQuery): Promise<Approval[]> {
    return this.pool.withClient(async (client) => {
      const result = await client.query<ApprovalRow>(
        `SELECT * FROM approvals WHERE requester = $1 OR group_name = ANY($2::text[])
         ORDER BY CASE WHEN status = 'pending' AND expires_at > $3 THEN 0 ELSE 1 END,
           created_at DESC, id
         LIMIT $4 OFFSET $5`,
        [query.requester, [...query.groups], query.now, query.limit, query.offset ?? 0],
      )
      return Promise.all(result.rows.map((row) => withVotes(client, row)))
    })
  }

  /** Records a vote in one transaction that holds the request's row lock until it commits. */
  vote(
    id: string,
    vote: ApprovalVote,
    check: (approval: Approval) => string | undefined,
  ): Promise<Approval | { error: string }> {
    return this.pool.transaction(async (client): Promise<Approval | { error: string }> => {
      const locked = await client.query<ApprovalRow>(
        'SELECT * FROM approvals WHERE id = $1 FOR UPDATE',
        [id],
      )
      const row = locked.rows[0]
      if (row === undefined) return { error: 'approval_not_found' }
      const approval = await withVotes(client, row)
      const error = check(approval)
      if (error !== undefined) return { error }
      await client.query(
        'INSERT INTO approval_votes (approval_id, approver, vote, at) VALUES ($1, $2, $3, $4)',
        [id, vote.approver, vote.vote, vote.at],
      )
      const approvals = approval.votes.filter((v) => v.vote === 'approve').length
      let status: ApprovalStatus = 'pending'
      if (vote.vote === 'deny') status = 'denied'
      else if (approvals + 1 >= approval.required) status = 'granted'
      await client.query('UPDATE approvals SET status = $2 WHERE id = $1', [id, status])
      return (await loadApproval(client, id))!
    })
  }

  useGrant(match: GrantMatch, now: string): Promise<Approval | undefined> {
    return this.pool.transaction(async (client) => {
      const result = await client.query<ApprovalRow>(USE_GRANT, grantParams(match, now))
      const row = result.rows[0]
      if (row === undefined) return undefined
      // RETURNING shows the row after the update; the caller expects it as it was before.
      return withVotes(client, { ...row, uses_left: row.uses_left + 1, status: 'granted' })
    })
  }

  peekGrant(match: GrantMatch, now: string): Promise<Approval | undefined> {
    return this.pool.withClient(async (client) => {
      const result = await client.query<ApprovalRow>(GRANT_ROW, grantParams(match, now))
      const row = result.rows[0]
      return row === undefined ? undefined : withVotes(client, row)
    })
  }

  async quotaExtension(requester: string, quota: string, now: string): Promise<number> {
    const rows = await this.pool.query<{ extra: number }>(
      `SELECT COALESCE(SUM(extra), 0)::bigint AS extra FROM approvals WHERE requester = $1
         AND operation = 'quota-extension' AND quota = $2 AND status = 'granted'
         AND expires_at > $3`,
      [requester, quota, now],
    )
    return rows[0]?.extra ?? 0
  }

  async recordFirstUse(app: string, kind: string, value: string, at: string): Promise<boolean> {
    const changed = await this.pool.execute(
      `INSERT INTO first_uses (app, kind, value, first_seen) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [app, kind, value, at],
    )
    return changed === 1
  }

  async putHold(hold: ApprovalHold): Promise<void> {
    await this.pool.execute(
      `INSERT INTO approval_holds (app, rule, group_name, required, created_at)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [hold.app, hold.rule, hold.group, hold.required, hold.createdAt],
    )
  }

  async hold(app: string): Promise<ApprovalHold | undefined> {
    const rows = await this.pool.query<HoldRow>('SELECT * FROM approval_holds WHERE app = $1', [
      app,
    ])
    const row = rows[0]
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
    return (await this.pool.execute('DELETE FROM approval_holds WHERE app = $1', [app])) === 1
  }
}

async function insertApproval(client: Queryable, approval: Omit<Approval, 'votes'>): Promise<void> {
  await client.query(
    `INSERT INTO approvals (id, requester, operation, key_name, params_digest, quota, extra,
       group_name, required, uses, uses_left, status, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
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
    ],
  )
}

async function loadApproval(client: Queryable, id: string): Promise<Approval | undefined> {
  const result = await client.query<ApprovalRow>('SELECT * FROM approvals WHERE id = $1', [id])
  const row = result.rows[0]
  return row === undefined ? undefined : withVotes(client, row)
}

async function withVotes(client: Queryable, row: ApprovalRow): Promise<Approval> {
  const result = await client.query<ApprovalVote>(
    `SELECT approver, vote, at FROM approval_votes WHERE approval_id = $1
     ORDER BY at, cast_order`,
    [row.id],
  )
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
    votes: result.rows,
  }
}
