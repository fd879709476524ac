/**
 * Conversations as ordered per-group logs (RFC 9420 §16.9 / RFC 9750 delivery service):
 * - one totally ordered log per conversation, server sequence numbers without gaps;
 * - the first valid commit for epoch n wins, any other for n is an epoch conflict (409 at the edge);
 * - application messages must carry the current epoch;
 * - every send carries a client idempotency key: a retry returns the first result;
 * - an append is acknowledged only after its transaction committed (appends are batched: many per commit).
 */
import { sql, type Kysely, type Transaction } from "kysely";
import type SQLite from "better-sqlite3";
import { ValiseError, type AuditEvent, type Frontier } from "@valise/core";
import type { Database } from "./schema.js";
import { auditItem, type AuditLog } from "./audit-log.js";

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
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
    sqlite?: SQLite.Database,
    private readonly audit?: AuditLog,
  ) {
    this.fast = sqlite ? new SqliteAppender(sqlite) : null;
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
    if (this.fast?.idle()) return this.fast.membership(conversationId, deviceId);
    const r = await this.db
      .selectFrom("conversation_members")
      .select(["joined_seq", "left_seq"])
      .where("conversation_id", "=", conversationId)
      .where("device_id", "=", deviceId)
      .executeTakeFirst();
    return r ? { joinedSeq: Number(r.joined_seq), leftSeq: r.left_seq === null ? null : Number(r.left_seq) } : null;
  }

  /**
   * Current members pending removal — the device was revoked, or its user's clearance no longer dominates the
   * conversation's label (table `pending_removals`, maintained by the directory changes): until a commit removes
   * them, nothing new may be encrypted. One indexed read, usually empty (the message hot path).
   */
  async pendingRemovals(conversationId: string): Promise<string[]> {
    if (this.fast?.idle()) return this.fast.pendingRemovals(conversationId);
    const rows = await this.db
      .selectFrom("pending_removals as p")
      .innerJoin("conversation_members as m", (j) =>
        j.onRef("m.conversation_id", "=", "p.conversation_id").onRef("m.device_id", "=", "p.device_id"),
      )
      .select("p.device_id")
      .where("p.conversation_id", "=", conversationId)
      .where("m.left_seq", "is", null)
      .orderBy("p.device_id")
      .execute();
    return rows.map((r) => r.device_id);
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

  /** Appends a batch of messages in one transaction (one fsync for all). Each item gets its own result. */
  async appendBatch(reqs: AppendRequest[]): Promise<AppendResult[]> {
    const now = this.now();
    // SQLite: one synchronous transaction with prepared statements (no other work interleaves, so it is short), unless
    // a Kysely transaction is open on the connection right now (then ours would nest in it): take the queue.
    const audit = this.audit && reqs.some((r) => r.audit) ? this.audit : undefined;
    const audited = (results: AppendResult[]) =>
      reqs.flatMap((r, i) => (r.audit && results[i]!.ok ? [auditItem(r.audit)] : []));
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
            res.push(await this.appendOne(trx, r, now));
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

  private async appendOne(trx: Transaction<Database>, r: AppendRequest, now: number): Promise<AppendResult> {
    // Idempotency: a retry with the same key from the same device returns the first result.
    const prior = await trx
      .selectFrom("messages")
      .select(["seq", "epoch", "created_at", "conversation_id"])
      .where("sender_device", "=", r.senderDevice)
      .where("idem_key", "=", r.idemKey)
      .executeTakeFirst();
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
    const upd = await trx
      .updateTable("conversations")
      .set((eb) => ({
        head_seq: eb("head_seq", "+", 1),
        ...(isCommit ? { epoch: eb("epoch", "+", 1) } : {}),
        ...(isCommit && r.commit?.groupInfo ? { group_info: r.commit.groupInfo } : {}),
      }))
      .where("id", "=", r.conversationId)
      .where("epoch", "=", r.epoch)
      .returning(["head_seq", "epoch"])
      .executeTakeFirst();
    if (!upd) {
      const cur = await trx
        .selectFrom("conversations")
        .select("epoch")
        .where("id", "=", r.conversationId)
        .executeTakeFirst();
      if (!cur) return { ok: false, code: "not_found" };
      return { ok: false, code: "epoch_conflict", epoch: Number(cur.epoch) };
    }
    const seq = Number(upd.head_seq);
    await trx
      .insertInto("messages")
      .values({
        conversation_id: r.conversationId,
        seq,
        kind: r.kind,
        epoch: r.epoch,
        sender_device: r.senderDevice,
        payload: r.payload,
        idem_key: r.idemKey,
        created_at: now,
      })
      .execute();
    const inbox: { deviceId: string; id: number }[] = [];
    if (isCommit && r.commit) {
      for (const dev of r.commit.removed) {
        await trx
          .updateTable("conversation_members")
          .set({ left_seq: seq + 1 })
          .where("conversation_id", "=", r.conversationId)
          .where("device_id", "=", dev)
          .where("left_seq", "is", null)
          .execute();
      }
      for (const dev of r.commit.added) {
        const existing = await trx
          .selectFrom("conversation_members")
          .select("device_id")
          .where("conversation_id", "=", r.conversationId)
          .where("device_id", "=", dev)
          .executeTakeFirst();
        if (existing)
          await trx
            .updateTable("conversation_members")
            .set({ joined_seq: seq + 1, left_seq: null })
            .where("conversation_id", "=", r.conversationId)
            .where("device_id", "=", dev)
            .execute();
        else
          await trx
            .insertInto("conversation_members")
            .values({ conversation_id: r.conversationId, device_id: dev, joined_seq: seq + 1, left_seq: null })
            .execute();
        if (r.commit.welcome) {
          const ins = await trx
            .insertInto("inbox")
            .values({
              device_id: dev,
              conversation_id: r.conversationId,
              commit_seq: seq,
              payload: r.commit.welcome,
              created_at: now,
            })
            .returning("id")
            .executeTakeFirstOrThrow();
          inbox.push({ deviceId: dev, id: Number(ins.id) });
        }
      }
    }
    return { ok: true, seq, epoch: Number(upd.epoch), duplicate: false, createdAt: now, inbox };
  }
}

/**
 * The append hot path on SQLite: the same statements as `appendOne`, prepared once and run synchronously inside one
 * better-sqlite3 transaction (BEGIN … COMMIT with synchronous=FULL: durable when it returns). Kysely's SQLite driver
 * prepares every statement anew and yields between statements, which stretched each batch transaction across
 * unrelated request handling and made queued membership reads wait for the single connection.
 */
class SqliteAppender {
  private readonly s;
  private readonly tx: (reqs: AppendRequest[], now: number, after?: (r: AppendResult[]) => void) => AppendResult[];
  constructor(private readonly sqlite: SQLite.Database) {
    const p = (sql: string) => sqlite.prepare(sql);
    this.s = {
      member: p("SELECT joined_seq, left_seq FROM conversation_members WHERE conversation_id = ? AND device_id = ?"),
      pending: p(
        "SELECT p.device_id AS device_id FROM pending_removals p JOIN conversation_members m ON m.conversation_id = p.conversation_id AND m.device_id = p.device_id WHERE p.conversation_id = ? AND m.left_seq IS NULL ORDER BY p.device_id",
      ),
      prior: p("SELECT seq, epoch, created_at, conversation_id FROM messages WHERE sender_device = ? AND idem_key = ?"),
      bump: p("UPDATE conversations SET head_seq = head_seq + 1 WHERE id = ? AND epoch = ? RETURNING head_seq, epoch"),
      bumpCommit: p(
        "UPDATE conversations SET head_seq = head_seq + 1, epoch = epoch + 1 WHERE id = ? AND epoch = ? RETURNING head_seq, epoch",
      ),
      bumpCommitGi: p(
        "UPDATE conversations SET head_seq = head_seq + 1, epoch = epoch + 1, group_info = ? WHERE id = ? AND epoch = ? RETURNING head_seq, epoch",
      ),
      epoch: p("SELECT epoch FROM conversations WHERE id = ?"),
      insert: p(
        "INSERT INTO messages (conversation_id, seq, kind, epoch, sender_device, payload, idem_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      leave: p(
        "UPDATE conversation_members SET left_seq = ? WHERE conversation_id = ? AND device_id = ? AND left_seq IS NULL",
      ),
      exists: p("SELECT device_id FROM conversation_members WHERE conversation_id = ? AND device_id = ?"),
      rejoin: p(
        "UPDATE conversation_members SET joined_seq = ?, left_seq = NULL WHERE conversation_id = ? AND device_id = ?",
      ),
      join: p(
        "INSERT INTO conversation_members (conversation_id, device_id, joined_seq, left_seq) VALUES (?, ?, ?, NULL)",
      ),
      inbox: p(
        "INSERT INTO inbox (device_id, conversation_id, commit_seq, payload, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
      ),
    };
    // BEGIN IMMEDIATE (take the write lock first, waiting busy_timeout): see storage/db.ts
    // Called inside the batch transaction, better-sqlite3 runs each request in its own SAVEPOINT: a request that
    // throws is rolled back alone and answered alone; the others in the batch are unaffected.
    const one = sqlite.transaction((r: AppendRequest, now: number) => this.appendOne(r, now));
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
    return !this.sqlite.inTransaction;
  }

  membership(conversationId: string, deviceId: string): MembershipRecord | null {
    const r = this.s.member.get(conversationId, deviceId) as
      { joined_seq: number; left_seq: number | null } | undefined;
    return r ? { joinedSeq: Number(r.joined_seq), leftSeq: r.left_seq === null ? null : Number(r.left_seq) } : null;
  }

  pendingRemovals(conversationId: string): string[] {
    return (this.s.pending.all(conversationId) as { device_id: string }[]).map((r) => r.device_id);
  }

  /** `after` runs inside the transaction, once every request is appended (the audit log's appends). */
  appendBatch(reqs: AppendRequest[], now: number, after?: (r: AppendResult[]) => void): AppendResult[] {
    return this.tx(reqs, now, after);
  }

  private appendOne(r: AppendRequest, now: number): AppendResult {
    const prior = this.s.prior.get(r.senderDevice, r.idemKey) as
      { seq: number; epoch: number; created_at: number; conversation_id: string } | undefined;
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
    const isCommit = r.kind === "commit";
    const upd = (
      !isCommit
        ? this.s.bump.get(r.conversationId, r.epoch)
        : r.commit?.groupInfo
          ? this.s.bumpCommitGi.get(blob(r.commit.groupInfo), r.conversationId, r.epoch)
          : this.s.bumpCommit.get(r.conversationId, r.epoch)
    ) as { head_seq: number; epoch: number } | undefined;
    if (!upd) {
      const cur = this.s.epoch.get(r.conversationId) as { epoch: number } | undefined;
      if (!cur) return { ok: false, code: "not_found" };
      return { ok: false, code: "epoch_conflict", epoch: Number(cur.epoch) };
    }
    const seq = Number(upd.head_seq);
    this.s.insert.run(r.conversationId, seq, r.kind, r.epoch, r.senderDevice, blob(r.payload), r.idemKey, now);
    const inbox: { deviceId: string; id: number }[] = [];
    if (isCommit && r.commit) {
      for (const dev of r.commit.removed) this.s.leave.run(seq + 1, r.conversationId, dev);
      for (const dev of r.commit.added) {
        if (this.s.exists.get(r.conversationId, dev)) this.s.rejoin.run(seq + 1, r.conversationId, dev);
        else this.s.join.run(r.conversationId, dev, seq + 1);
        if (r.commit.welcome) {
          const ins = this.s.inbox.get(dev, r.conversationId, seq, blob(r.commit.welcome), now) as { id: number };
          inbox.push({ deviceId: dev, id: Number(ins.id) });
        }
      }
    }
    return { ok: true, seq, epoch: Number(upd.epoch), duplicate: false, createdAt: now, inbox };
  }
}

function blob(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
