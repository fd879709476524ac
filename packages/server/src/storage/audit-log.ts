/**
 * The audit log (DESIGN.md §3 "Audit log", T3): a second Merkle log whose leaves are audit events (core
 * `encodeAuditEvent`: the export line itself). Same tables and code as the directory log (`MerkleLog`), under the
 * `audit_log_` prefix, plus indexed copies of time, actor, action and object on each entry so officers can query
 * without a scan. Those copies only select rows: what is returned is always the entry's leaf bytes, and
 * `valise audit verify` checks every leaf against a signed checkpoint.
 */
import type { Kysely, Transaction } from "kysely";
import { randomBytes } from "node:crypto";
import type SQLite from "better-sqlite3";
import { encodeAuditEvent, type AuditEvent } from "@valise/core";
import type { Database } from "./schema.js";
import { MerkleLog, type LogItem } from "./merkle-log.js";

export const AUDIT_COLUMNS = ["time", "actor", "action", "object"] as const;

export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  object?: string | undefined;
  /** Milliseconds since the epoch, inclusive. */
  since?: number | undefined;
  /** Milliseconds since the epoch, exclusive. */
  until?: number | undefined;
  /** Only entries with index < before (paging backwards from the newest). */
  before?: number | undefined;
  limit: number;
}

export interface StoredAuditEntry {
  index: number;
  data: Uint8Array;
}

/** A fresh event id: `e-` and 20 random base-16 digits. */
export function newAuditId(): string {
  return `e-${randomBytes(10).toString("hex")}`;
}

/** Who made a change that did not come in through the API (the admin CLI, on the server machine). */
export interface AuditOperator {
  actor: string;
  source: string;
  client?: string | null;
  device?: string | null;
}

export const ADMIN_CLI: AuditOperator = { actor: "admin-cli", source: "local", client: "valise-admin" };

export function auditItem(e: AuditEvent): LogItem {
  return {
    data: encodeAuditEvent(e),
    columns: { time: Date.parse(e.time), actor: e.actor, action: e.action, object: e.object },
  };
}

export class AuditLog extends MerkleLog {
  private readonly scanStmt: SQLite.Statement<[number, number], Buffer> | null;

  constructor(db: Kysely<Database>, now: () => number, sqlite?: SQLite.Database) {
    super(db, now, { name: "audit", extraColumns: AUDIT_COLUMNS, sqlite });
    this.scanStmt = sqlite
      ? sqlite
          .prepare<[number, number], Buffer>(
            "SELECT data FROM audit_log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
          )
          .pluck()
      : null;
  }

  /**
   * The leaves of entries [start, start + count) in order, for long sequential scans (the retroactive search of
   * allies' indicators): on SQLite straight from a prepared statement, without copying; elsewhere `entries`.
   */
  async scanEntries(start: number, count: number): Promise<Uint8Array[]> {
    if (this.scanStmt) return this.scanStmt.all(start, start + count);
    return this.entries(start, count);
  }

  /** Append events in one transaction of their own; durable when it resolves. */
  appendEvents(events: readonly AuditEvent[]): Promise<number> {
    return this.appendBatch(events.map(auditItem));
  }

  /**
   * Append events inside another transaction (a directory change audits itself atomically). The in-memory frontier
   * is not advanced: the next append sees the head moved and reloads it from the stored nodes.
   */
  async appendEventsIn(trx: Transaction<Database>, events: readonly AuditEvent[]): Promise<void> {
    await this.appendIn(trx, events.map(auditItem), undefined);
  }

  /** Newest first: entries matching the filter, by their indexed columns. */
  async query(f: AuditFilter): Promise<StoredAuditEntry[]> {
    let q = this.ldb.selectFrom("log_entries").select(["idx", "data"]);
    if (f.actor !== undefined) q = q.where("actor" as "idx", "=", f.actor as never);
    if (f.action !== undefined) q = q.where("action" as "idx", "=", f.action as never);
    if (f.object !== undefined) q = q.where("object" as "idx", "=", f.object as never);
    if (f.since !== undefined) q = q.where("time" as "idx", ">=", f.since);
    if (f.until !== undefined) q = q.where("time" as "idx", "<", f.until);
    if (f.before !== undefined) q = q.where("idx", "<", f.before);
    const rows = await q.orderBy("idx", "desc").limit(f.limit).execute();
    return rows.map((r) => ({ index: Number(r.idx), data: new Uint8Array(r.data) }));
  }
}
