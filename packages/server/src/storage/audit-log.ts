/**
 * The audit log (DESIGN.md §3 "Audit log", T3): a second Merkle log whose leaves are audit events (core
 * `encodeAuditEvent`: the export line itself). Same tables and code as the directory log (`MerkleLog`), under the
 * `audit_log_` prefix, plus indexed copies of time, actor, action and object on each entry so officers can query
 * without a scan. Those copies only select rows: what is returned is always the entry's leaf bytes, and
 * `valise audit verify` checks every leaf against a signed checkpoint.
 */
import { sql, type Kysely, type Transaction } from "kysely";
import { randomFillSync } from "node:crypto";
import type SQLite from "better-sqlite3";
import { encodeAuditEvent, parseAuditEvent, type AuditEvent } from "@valise/core";
import type { Database } from "./schema.js";
import { MerkleLog, type LogItem } from "./merkle-log.js";
import { parseAddress, type Cidr } from "../incidents/ioc.js";

/**
 * Indexed copies of event fields on each entry. `source_key` (migration 024) is the client address as sortable
 * bytes — 0x04 and the 4 address bytes for IPv4 (an IPv4-mapped IPv6 address counts as IPv4), 0x06 and 16 bytes for
 * IPv6, NULL for anything else ("local", "") — so that an address is an equality lookup and a CIDR network a range
 * scan of the index (`sourceRange`). Derived data: the leaf (hashed into the log, checked by `valise audit verify`)
 * is the truth, and `sourceKeyMismatches` finds rows whose column no longer says what their leaf says.
 */
export const AUDIT_COLUMNS = ["time", "actor", "action", "object", "source_key"] as const;

function bigBytes(v: bigint, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/** The `source_key` of an event's source address; null if it is not an IP address. */
export function sourceKey(source: string): Buffer | null {
  if (source === "") return null;
  const a = parseAddress(source);
  if (!a) return null;
  return Buffer.concat([Buffer.of(a.v), bigBytes(a.value, a.v === 4 ? 4 : 16)]);
}

/** The inclusive `source_key` range of a network. */
export function sourceRange(c: Cidr): { lo: Buffer; hi: Buffer } {
  const bits = c.v === 4 ? 32 : 128;
  const host = (1n << BigInt(bits - c.prefix)) - 1n;
  const n = bits / 8;
  return {
    lo: Buffer.concat([Buffer.of(c.v), bigBytes(c.net, n)]),
    hi: Buffer.concat([Buffer.of(c.v), bigBytes(c.net | host, n)]),
  };
}

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

/**
 * Random bytes for event ids, drawn from the CSPRNG a pool at a time (one call per 409 ids instead of one per event:
 * the call, not the bytes, was the cost on the message path); each byte is used once.
 */
const ID_POOL = Buffer.alloc(4096);
let idPoolAt = ID_POOL.length;

/** A fresh event id: `e-` and 20 random base-16 digits. */
export function newAuditId(): string {
  if (idPoolAt + 10 > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const id = ID_POOL.toString("hex", idPoolAt, idPoolAt + 10);
  idPoolAt += 10;
  return `e-${id}`;
}

/** Who made a change that did not come in through the API (the admin CLI, on the server machine). */
export interface AuditOperator {
  actor: string;
  source: string;
  client?: string | null;
  device?: string | null;
}

export const ADMIN_CLI: AuditOperator = { actor: "admin-cli", source: "local", client: "valise-admin" };

const SOURCE_FIELD = Buffer.from(',"source":"');

/**
 * The `source` of a canonical audit leaf (audit-event.ts writes the DESIGN fields in order): cut out of the bytes
 * without parsing; a source with an escape in it is parsed properly. Null for a leaf that is not an audit event.
 */
export function leafSource(data: Uint8Array): string | null {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const i = b.indexOf(SOURCE_FIELD);
  const to = i < 0 ? -1 : b.indexOf(0x22, i + SOURCE_FIELD.length);
  if (to >= 0) {
    const slice = b.subarray(i + SOURCE_FIELD.length, to);
    if (!slice.includes(0x5c)) return slice.toString("utf8");
  }
  const p = parseAuditEvent(data);
  return p.ok ? p.event.source : null;
}

/** Whether a row's `source_key` column is what its leaf says (null and null are equal). */
export function sourceKeyAgrees(data: Uint8Array, column: Uint8Array | null): boolean {
  const src = leafSource(data);
  const want = src === null ? null : sourceKey(src);
  if (want === null || column === null) return want === null && (column === null || column.byteLength === 0);
  return Buffer.compare(want, Buffer.from(column.buffer, column.byteOffset, column.byteLength)) === 0;
}

export interface SourceRow {
  index: number;
  data: Uint8Array;
  key: Uint8Array | null;
}

export function auditItem(e: AuditEvent): LogItem {
  return {
    data: encodeAuditEvent(e),
    columns: {
      time: Date.parse(e.time),
      actor: e.actor,
      action: e.action,
      object: e.object,
      source_key: sourceKey(e.source),
    },
  };
}

interface SourceRowRaw {
  idx: number | string | bigint;
  data: Uint8Array;
  source_key: Uint8Array | null;
}
const sourceRow = (r: SourceRowRaw): SourceRow => ({
  index: Number(r.idx),
  data: new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength),
  key: r.source_key === null ? null : new Uint8Array(r.source_key),
});

export class AuditLog extends MerkleLog {
  private readonly scanStmt: SQLite.Statement<[number, number], Buffer> | null;
  private readonly rangeStmt: SQLite.Statement<[Buffer, Buffer, number, number], SourceRowRaw> | null;
  private readonly keyedStmt: SQLite.Statement<[number, number], SourceRowRaw> | null;

  constructor(db: Kysely<Database>, now: () => number, sqlite?: SQLite.Database) {
    super(db, now, { name: "audit", extraColumns: AUDIT_COLUMNS, sqlite });
    this.scanStmt = sqlite
      ? sqlite
          .prepare<[number, number], Buffer>(
            "SELECT data FROM audit_log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
          )
          .pluck()
      : null;
    this.rangeStmt = sqlite
      ? sqlite.prepare<[Buffer, Buffer, number, number], SourceRowRaw>(
          "SELECT idx, data, source_key FROM audit_log_entries WHERE source_key BETWEEN ? AND ? AND +idx >= ? AND +idx < ?",
        )
      : null;
    this.keyedStmt = sqlite
      ? sqlite.prepare<[number, number], SourceRowRaw>(
          "SELECT idx, data, source_key FROM audit_log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
        )
      : null;
  }

  /**
   * Entries in [from, to) whose `source_key` lies in [lo, hi] (both inclusive): a range scan of the
   * (source_key, idx) index. In no particular order. What the column says is NOT trusted by callers: they re-derive
   * the key from the returned leaf.
   */
  async entriesBySource(lo: Buffer, hi: Buffer, from: number, to: number): Promise<SourceRow[]> {
    if (this.rangeStmt) return this.rangeStmt.all(lo, hi, from, to).map(sourceRow);
    // `idx + 0`: the range on idx must not tempt the planner away from the (source_key, idx) index.
    const rows = await sql<SourceRowRaw>`select idx, data, source_key from audit_log_entries
      where source_key between ${lo} and ${hi} and idx + 0 >= ${from} and idx + 0 < ${to}`.execute(this.db);
    return rows.rows.map(sourceRow);
  }

  /** Entries [start, start + count) with their `source_key` column, in order (the column check). */
  async entriesWithSourceKey(start: number, count: number): Promise<SourceRow[]> {
    if (this.keyedStmt) return this.keyedStmt.all(start, start + count).map(sourceRow);
    const rows = await this.ldb
      .selectFrom("log_entries")
      .select(["idx", "data", "source_key" as "idx"])
      .where("idx", ">=", start)
      .where("idx", "<", start + count)
      .orderBy("idx")
      .execute();
    return rows.map((r) => sourceRow(r as unknown as SourceRowRaw));
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
