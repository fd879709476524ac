/**
 * Conversations as ordered per-group logs (RFC 9420 §16.9 / RFC 9750 delivery service):
 * - one totally ordered log per conversation, server sequence numbers without gaps;
 * - the first valid commit for epoch n wins, any other for n is an epoch conflict (409 at the edge);
 * - application messages must carry the current epoch;
 * - every send carries a client idempotency key: a retry returns the first result;
 * - an append is acknowledged only after its transaction committed (appends are batched: many per commit).
 */
import { sql, type Kysely } from "kysely";
import type SQLite from "better-sqlite3";
import { ValiseError, type AuditEvent, type Frontier } from "@valise/core";
import type { Database } from "./schema.js";
import { auditItem, type AuditLog } from "./audit-log.js";
import { all, dialectOf, one, run, runAsync, SyncRunner, type Steps } from "./sql-steps.js";

export type MessageKind = "application" | "commit" | "proposal";

export interface AppendRequest {
  conversationId: string;
  senderDevice: string;
  kind: MessageKind;
  epoch: number;
  payload: Uint8Array;
  idemKey: string;
  /** For commits: devices added (each gets the Welcome in its inbox) and removed, and the new GroupInfo. */
  commit?: {
    added: string[];
    removed: string[];
    welcome: Uint8Array | null;
    groupInfo: Uint8Array | null;
    external: boolean;
  };
  /**
   * The send's audit event (DESIGN.md §3 "Audit log"): appended to the audit log in the same transaction as the
   * message when the append succeeds (also for an idempotent retry), so a message is stored if and only if its
   * event is. An epoch conflict stores nothing and appends no event.
   */
  audit?: AuditEvent;
}

export type AppendResult =
  | {
      ok: true;
      seq: number;
      epoch: number;
      duplicate: boolean;
      createdAt: number;
      inbox: { deviceId: string; id: number }[];
    }
  | { ok: false; code: "epoch_conflict"; epoch: number }
  | { ok: false; code: "not_found" }
  /** The sender already used this key for another conversation: nothing stored (the key is the sender device's). */
  | { ok: false; code: "idempotency_conflict" }
  /** This request alone failed (rolled back to its savepoint); the others in its batch are unaffected. */
  | { ok: false; code: "failed"; error: unknown };

export interface StoredMessage {
  conversationId: string;
  seq: number;
  kind: MessageKind;
  epoch: number;
  sender: string;
  payload: Uint8Array;
  createdAt: number;
}

export interface ConversationRecord {
  id: string;
  kind: string;
  label: string;
  unit: string | null;
  /** `link` conversations: the originating unit (`unit` is the addressee); null for other kinds. */
  fromUnit: string | null;
  creator: string;
  epoch: number;
  headSeq: number;
  createdAt: number;
}

export interface MembershipRecord {
  joinedSeq: number;
  leftSeq: number | null;
}

function toConv(r: Database["conversations"]): ConversationRecord {
  return {
    id: r.id,
    kind: r.kind,
    label: r.label,
    unit: r.unit,
    fromUnit: r.from_unit ?? null,
    creator: r.creator,
    epoch: Number(r.epoch),
    headSeq: Number(r.head_seq),
    createdAt: Number(r.created_at),
  };
}

export class ConversationStore {
  private readonly fast: SqliteAppender | null;
  private readonly dialect: "sqlite" | "postgres";
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
    sqlite?: SQLite.Database,
    private readonly audit?: AuditLog,
  ) {
    this.fast = sqlite ? new SqliteAppender(sqlite) : null;
    this.dialect = dialectOf(db);
  }

  /** A read of the hot path: synchronously on SQLite when no transaction is open, else through Kysely. */
  private steps<T>(s: Steps<T>): Promise<T> {
    return this.fast?.idle() ? Promise.resolve(this.fast.runner.run(s)) : runAsync(this.db, this.dialect, s);
  }

  async create(input: {
    id: string;
    kind: string;
    label: string;
    unit: string | null;
    fromUnit?: string | null;
    creator: string;
    creatorDevice: string;
  }): Promise<ConversationRecord> {
    const fromUnit = input.fromUnit ?? null;
    const now = this.now();
    return this.db.transaction().execute(async (trx) => {
      if (await trx.selectFrom("conversations").select("id").where("id", "=", input.id).executeTakeFirst())
        throw new ValiseError("conflict", `conversation ${input.id} already exists`);
      await trx
        .insertInto("conversations")
        .values({
          id: input.id,
          kind: input.kind,
          label: input.label,
          unit: input.unit,
          from_unit: fromUnit,
          creator: input.creator,
          epoch: 0,
          head_seq: 0,
          group_info: null,
          created_at: now,
        })
        .execute();
      await trx
        .insertInto("conversation_members")
        .values({ conversation_id: input.id, device_id: input.creatorDevice, joined_seq: 1, left_seq: null })
        .execute();
      return {
        id: input.id,
        kind: input.kind,
        label: input.label,
        unit: input.unit,
        fromUnit,
        creator: input.creator,
        epoch: 0,
        headSeq: 0,
        createdAt: now,
      };
    });
  }

  async get(id: string): Promise<ConversationRecord | null> {
    const r = await this.db.selectFrom("conversations").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toConv(r) : null;
  }

  async groupInfo(id: string): Promise<Uint8Array | null> {
    const r = await this.db.selectFrom("conversations").select("group_info").where("id", "=", id).executeTakeFirst();
    return r?.group_info ? new Uint8Array(r.group_info) : null;
  }

  async membership(conversationId: string, deviceId: string): Promise<MembershipRecord | null> {
    return this.steps(membershipSteps(conversationId, deviceId));
  }

  /**
   * Current members pending removal — the device was revoked, or its user's clearance no longer dominates the
   * conversation's label (table `pending_removals`, maintained by the directory changes): until a commit removes
   * them, nothing new may be encrypted. One indexed read, usually empty (the message hot path).
   */
  async pendingRemovals(conversationId: string): Promise<string[]> {
    return this.steps(pendingSteps(conversationId));
  }

  /**
   * True when this device may no longer read the conversation: its user's clearance does not dominate the label
   * (whether or not the Remove has been committed yet). Revoked devices have no session, so never ask.
   */
  async notCleared(conversationId: string, deviceId: string): Promise<boolean> {
    const r = await this.db
      .selectFrom("pending_removals")
      .select("reason")
      .where("conversation_id", "=", conversationId)
      .where("device_id", "=", deviceId)
      .executeTakeFirst();
    return !!r;
  }

  /** Devices currently in the conversation (for push fan-out). */
  async currentMembers(conversationId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("conversation_members")
      .select("device_id")
      .where("conversation_id", "=", conversationId)
      .where("left_seq", "is", null)
      .execute();
    return rows.map((r) => r.device_id);
  }

  async listForDevice(deviceId: string): Promise<(ConversationRecord & MembershipRecord)[]> {
    const rows = await this.db
      .selectFrom("conversation_members as m")
      .innerJoin("conversations as c", "c.id", "m.conversation_id")
      .selectAll("c")
      .select(["m.joined_seq", "m.left_seq"])
      .where("m.device_id", "=", deviceId)
      // Conversations this device is no longer cleared for are left out (need-to-know).
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom("pending_removals as p")
              .select("p.device_id")
              .whereRef("p.conversation_id", "=", "m.conversation_id")
              .whereRef("p.device_id", "=", "m.device_id"),
          ),
        ),
      )
      .orderBy("c.created_at")
      .execute();
    return rows.map((r) => ({
      ...toConv(r),
      joinedSeq: Number(r.joined_seq),
      leftSeq: r.left_seq === null ? null : Number(r.left_seq),
    }));
  }

  /** Messages with seq > after that the device may read (from its join up to its removal), oldest first. */
  async fetch(conversationId: string, after: number, limit: number, range: MembershipRecord): Promise<StoredMessage[]> {
    let q = this.db
      .selectFrom("messages")
      .selectAll()
      .where("conversation_id", "=", conversationId)
      .where("seq", ">", Math.max(after, range.joinedSeq - 1));
    if (range.leftSeq !== null) q = q.where("seq", "<", range.leftSeq);
    const rows = await q.orderBy("seq").limit(limit).execute();
    return rows.map((r) => ({
      conversationId: r.conversation_id,
      seq: Number(r.seq),
      kind: r.kind as MessageKind,
      epoch: Number(r.epoch),
      sender: r.sender_device,
      payload: new Uint8Array(r.payload),
      createdAt: Number(r.created_at),
    }));
  }

  async fetchInbox(
    deviceId: string,
    after: number,
    limit: number,
  ): Promise<{ id: number; conversationId: string; commitSeq: number; payload: Uint8Array; createdAt: number }[]> {
    const rows = await this.db
      .selectFrom("inbox")
      .selectAll()
      .where("device_id", "=", deviceId)
      .where("id", ">", after)
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      conversationId: r.conversation_id,
      commitSeq: Number(r.commit_seq),
      payload: new Uint8Array(r.payload),
      createdAt: Number(r.created_at),
    }));
  }

  /**
   * Appends a batch of messages in one transaction (one fsync for all). Each item gets its own result. `events` are
   * other audit events appended to the audit log in the same transaction (after the sends' own): durable if and only
   * if it commits; if they cannot be appended, nothing in the batch is.
   */
  async appendBatch(reqs: AppendRequest[], events: readonly AuditEvent[] = []): Promise<AppendResult[]> {
    const now = this.now();
    if (events.length > 0 && !this.audit) throw new ValiseError("internal", "audit events without an audit log");
    // SQLite: one synchronous transaction with prepared statements (no other work interleaves, so it is short), unless
    // a Kysely transaction is open on the connection right now (then ours would nest in it): take the queue.
    const audit = this.audit && (events.length > 0 || reqs.some((r) => r.audit)) ? this.audit : undefined;
    const audited = (results: AppendResult[]) => [
      ...reqs.flatMap((r, i) => (r.audit && results[i]!.ok ? [auditItem(r.audit)] : [])),
      ...events.map(auditItem),
    ];
    let frontier: Frontier | undefined;
    let out: AppendResult[];
    if (this.fast?.idle())
      out = this.fast.appendBatch(
        reqs,
        now,
        audit ? (res) => (frontier = audit.appendWithinSqlite(audited(res))) : undefined,
      );
    else
      out = await this.db.transaction().execute(async (trx) => {
        const res: AppendResult[] = [];
        // One savepoint per request: one request's error never fails another in the same batch.
        for (const r of reqs) {
          await sql`SAVEPOINT valise_append`.execute(trx);
          try {
            res.push(await runAsync(trx, this.dialect, appendSteps(r, now)));
            await sql`RELEASE SAVEPOINT valise_append`.execute(trx);
          } catch (error) {
            await sql`ROLLBACK TO SAVEPOINT valise_append`.execute(trx);
            await sql`RELEASE SAVEPOINT valise_append`.execute(trx);
            res.push({ ok: false, code: "failed", error });
          }
        }
        const items = audit ? audited(res) : [];
        if (audit && items.length > 0) frontier = await audit.appendItemsIn(trx, items);
        return res;
      });
    audit?.noteCommitted(frontier);
    return out;
  }
}

/** The statements of the message hot path (`?` placeholders; sql-steps.ts rewrites them for PostgreSQL). */
const Q = {
  member: "SELECT joined_seq, left_seq FROM conversation_members WHERE conversation_id = ? AND device_id = ?",
  pending:
    "SELECT p.device_id AS device_id FROM pending_removals p JOIN conversation_members m ON m.conversation_id = p.conversation_id AND m.device_id = p.device_id WHERE p.conversation_id = ? AND m.left_seq IS NULL ORDER BY p.device_id",
  prior: "SELECT seq, epoch, created_at, conversation_id FROM messages WHERE sender_device = ? AND idem_key = ?",
  bump: "UPDATE conversations SET head_seq = head_seq + 1 WHERE id = ? AND epoch = ? RETURNING head_seq, epoch",
  bumpCommit:
    "UPDATE conversations SET head_seq = head_seq + 1, epoch = epoch + 1 WHERE id = ? AND epoch = ? RETURNING head_seq, epoch",
  bumpCommitGi:
    "UPDATE conversations SET head_seq = head_seq + 1, epoch = epoch + 1, group_info = ? WHERE id = ? AND epoch = ? RETURNING head_seq, epoch",
  epoch: "SELECT epoch FROM conversations WHERE id = ?",
  insert:
    "INSERT INTO messages (conversation_id, seq, kind, epoch, sender_device, payload, idem_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  leave:
    "UPDATE conversation_members SET left_seq = ? WHERE conversation_id = ? AND device_id = ? AND left_seq IS NULL",
  exists: "SELECT device_id FROM conversation_members WHERE conversation_id = ? AND device_id = ?",
  rejoin: "UPDATE conversation_members SET joined_seq = ?, left_seq = NULL WHERE conversation_id = ? AND device_id = ?",
  join: "INSERT INTO conversation_members (conversation_id, device_id, joined_seq, left_seq) VALUES (?, ?, ?, NULL)",
  inbox:
    "INSERT INTO inbox (device_id, conversation_id, commit_seq, payload, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
} as const;

function* membershipSteps(conversationId: string, deviceId: string): Steps<MembershipRecord | null> {
  const r = yield* one<{ joined_seq: number | string; left_seq: number | string | null }>(
    Q.member,
    conversationId,
    deviceId,
  );
  return r ? { joinedSeq: Number(r.joined_seq), leftSeq: r.left_seq === null ? null : Number(r.left_seq) } : null;
}

function* pendingSteps(conversationId: string): Steps<string[]> {
  return (yield* all<{ device_id: string }>(Q.pending, conversationId)).map((r) => r.device_id);
}

/**
 * One append, the delivery rules written once (run synchronously on better-sqlite3, asynchronously on PostgreSQL or
 * inside a Kysely transaction on SQLite: sql-steps.ts).
 */
function* appendSteps(r: AppendRequest, now: number): Steps<AppendResult> {
  // Idempotency: a retry with the same key from the same device returns the first result.
  const prior = yield* one<{ seq: number; epoch: number; created_at: number; conversation_id: string }>(
    Q.prior,
    r.senderDevice,
    r.idemKey,
  );
  if (prior) {
    // An answer for this request only (a throw would fail every other request in the batch).
    if (prior.conversation_id !== r.conversationId) return { ok: false, code: "idempotency_conflict" };
    return {
      ok: true,
      seq: Number(prior.seq),
      epoch: Number(prior.epoch),
      duplicate: true,
      createdAt: Number(prior.created_at),
      inbox: [],
    };
  }
  // RFC 9420 §14 / RFC 9750: the first commit for epoch n advances the epoch; application messages and proposals
  // must be for the current epoch. The conditional UPDATE is the serialization point on both SQLite and PostgreSQL.
  const isCommit = r.kind === "commit";
  const upd = !isCommit
    ? yield* one<{ head_seq: number; epoch: number }>(Q.bump, r.conversationId, r.epoch)
    : r.commit?.groupInfo
      ? yield* one<{ head_seq: number; epoch: number }>(Q.bumpCommitGi, r.commit.groupInfo, r.conversationId, r.epoch)
      : yield* one<{ head_seq: number; epoch: number }>(Q.bumpCommit, r.conversationId, r.epoch);
  if (!upd) {
    const cur = yield* one<{ epoch: number }>(Q.epoch, r.conversationId);
    if (!cur) return { ok: false, code: "not_found" };
    return { ok: false, code: "epoch_conflict", epoch: Number(cur.epoch) };
  }
  const seq = Number(upd.head_seq);
  yield* run(Q.insert, r.conversationId, seq, r.kind, r.epoch, r.senderDevice, r.payload, r.idemKey, now);
  const inbox: { deviceId: string; id: number }[] = [];
  if (isCommit && r.commit) {
    for (const dev of r.commit.removed) yield* run(Q.leave, seq + 1, r.conversationId, dev);
    for (const dev of r.commit.added) {
      if (yield* one(Q.exists, r.conversationId, dev)) yield* run(Q.rejoin, seq + 1, r.conversationId, dev);
      else yield* run(Q.join, r.conversationId, dev, seq + 1);
      if (r.commit.welcome) {
        const ins = yield* one<{ id: number }>(Q.inbox, dev, r.conversationId, seq, r.commit.welcome, now);
        inbox.push({ deviceId: dev, id: Number(ins!.id) });
      }
    }
  }
  return { ok: true, seq, epoch: Number(upd.epoch), duplicate: false, createdAt: now, inbox };
}

/**
 * The append hot path on SQLite: `appendSteps` run synchronously inside one better-sqlite3 transaction (BEGIN …
 * COMMIT with synchronous=FULL: durable when it returns), statements prepared once. Kysely's SQLite driver prepares
 * every statement anew and yields between statements, which stretched each batch transaction across unrelated
 * request handling and made queued membership reads wait for the single connection.
 */
class SqliteAppender {
  readonly runner: SyncRunner;
  private readonly tx: (reqs: AppendRequest[], now: number, after?: (r: AppendResult[]) => void) => AppendResult[];
  constructor(sqlite: SQLite.Database) {
    const runner = (this.runner = new SyncRunner(sqlite));
    // BEGIN IMMEDIATE (take the write lock first, waiting busy_timeout): see storage/db.ts
    // Called inside the batch transaction, better-sqlite3 runs each request in its own SAVEPOINT: a request that
    // throws is rolled back alone and answered alone; the others in the batch are unaffected.
    const one = sqlite.transaction((r: AppendRequest, now: number) => runner.run(appendSteps(r, now)));
    const tx = sqlite.transaction((reqs: AppendRequest[], now: number, after?: (r: AppendResult[]) => void) => {
      const out = reqs.map((r): AppendResult => {
        try {
          return one(r, now);
        } catch (error) {
          return { ok: false, code: "failed", error };
        }
      });
      after?.(out);
      return out;
    });
    this.tx = (...a) => tx.immediate(...a);
  }

  /** True when no (Kysely) transaction is open on the connection, so a synchronous one cannot nest inside it. */
  idle(): boolean {
    return this.runner.idle();
  }

  /** `after` runs inside the transaction, once every request is appended (the audit log's appends). */
  appendBatch(reqs: AppendRequest[], now: number, after?: (r: AppendResult[]) => void): AppendResult[] {
    return this.tx(reqs, now, after);
  }
}
