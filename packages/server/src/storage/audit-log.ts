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

/** One distinct `source` among a range of entries, with the indexes of the entries that carry it (ascending). */
export interface SourceGroup {
  source: string;
  indexes: number[];
}

// `,"source":"` — the key as the canonical encoding writes it (a quote inside a value is always escaped, so the first
// occurrence is the key); the source runs to the next quote (audit sources are addresses, at most 256 characters).
const SOURCE_KEY_HEX = "2c22736f75726365223a22";
const SOURCE_KEY_LEN = 11;

export class AuditLog extends MerkleLog {
  private readonly scanStmt: SQLite.Statement<[number, number], Buffer> | null;
  private readonly sourcesStmt: SQLite.Statement<[number, number], { src: string | null; idxs: string }> | null;
  private readonly atStmt: SQLite.Statement<[string], { idx: number; data: Buffer }> | null;

  constructor(db: Kysely<Database>, now: () => number, sqlite?: SQLite.Database) {
    super(db, now, { name: "audit", extraColumns: AUDIT_COLUMNS, sqlite });
    this.scanStmt = sqlite
      ? sqlite
          .prepare<[number, number], Buffer>(
            "SELECT data FROM audit_log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
          )
          .pluck()
      : null;
    // The retroactive indicator search needs only each entry's source: SQLite cuts it out of the leaf and groups the
    // range by it, so a year of entries reaches JavaScript as a few thousand distinct addresses, not 2 M buffers.
    this.sourcesStmt = sqlite
      ? sqlite.prepare(
          `SELECT src, group_concat(idx) AS idxs FROM (
             SELECT idx, CASE WHEN p = 0 THEN NULL ELSE CAST(substr(data, p + ${SOURCE_KEY_LEN},
               instr(substr(data, p + ${SOURCE_KEY_LEN}, 300), X'22') - 1) AS TEXT) END AS src
             FROM (SELECT idx, data, instr(data, X'${SOURCE_KEY_HEX}') AS p FROM audit_log_entries
                   WHERE idx >= ? AND idx < ?))
           GROUP BY src`,
        )
      : null;
    this.atStmt = sqlite
      ? sqlite.prepare(
          "SELECT idx, data FROM audit_log_entries WHERE idx IN (SELECT value FROM json_each(?)) ORDER BY idx",
        )
      : null;
  }

  /**
   * The distinct sources of entries [start, start + count), each with the indexes carrying it. On SQLite computed in
   * the database; elsewhere from the leaves. A source that cannot be cut out (no source key) is left out: the caller
   * matches what it then reads with the parsed event, never with this text alone.
   */
  async scanSources(start: number, count: number): Promise<SourceGroup[]> {
    if (this.sourcesStmt) {
      const out: SourceGroup[] = [];
      for (const r of this.sourcesStmt.all(start, start + count)) {
        if (r.src === null || r.src === "") continue;
        out.push({ source: r.src, indexes: r.idxs.split(",").map(Number) });
      }
      return out;
    }
    const groups = new Map<string, number[]>();
    const leaves = await this.entries(start, count);
    const key = Buffer.from(SOURCE_KEY_HEX, "hex");
    leaves.forEach((leaf, k) => {
      const b = Buffer.from(leaf.buffer, leaf.byteOffset, leaf.byteLength);
      const i = b.indexOf(key);
      if (i < 0) return;
      const to = b.indexOf(0x22, i + SOURCE_KEY_LEN);
      if (to < 0) return;
      const src = b.toString("latin1", i + SOURCE_KEY_LEN, to);
      if (src === "") return;
      const list = groups.get(src);
      if (list) list.push(start + k);
      else groups.set(src, [start + k]);
    });
    return [...groups].map(([source, indexes]) => ({ source, indexes }));
  }

  /** The leaves at these indexes (any order in, ascending out; at most a few thousand per call). */
  async entriesAt(indexes: readonly number[]): Promise<StoredAuditEntry[]> {
    if (indexes.length === 0) return [];
    if (this.atStmt)
      return this.atStmt.all(JSON.stringify(indexes)).map((r) => ({ index: Number(r.idx), data: r.data }));
    const rows = await this.ldb
      .selectFrom("log_entries")
      .select(["idx", "data"])
      .where("idx", "in", [...indexes])
      .orderBy("idx")
      .execute();
    return rows.map((r) => ({ index: Number(r.idx), data: new Uint8Array(r.data) }));
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
