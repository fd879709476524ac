/**
 * The directory log (DESIGN.md §3 "Key transparency"): an RFC 9162 Merkle tree whose leaves are the canonical
 * encodings of directory changes. Every change appends its leaf in the same database transaction as the change
 * (`DirectoryLog.change`), so the directory and the log never disagree. Appends store every perfect-subtree hash
 * they complete (`frontierAppend`), so proofs and C2SP tlog-tiles are read from the database, never rehashed.
 *
 * Appends are serialized by the one-row `directory_log_head` (an UPDATE … RETURNING takes its row lock on
 * PostgreSQL and the write lock on SQLite); the primary key on the entry index makes a fork impossible even so.
 */
import type { Kysely, Transaction } from "kysely";
import {
  EMPTY_FRONTIER,
  ValiseError,
  assembleProof,
  consistencyProofPlan,
  encodeDirectoryEntry,
  formatCheckpoint,
  frontierAppend,
  frontierRoot,
  inclusionProofPlan,
  isTreeIndex,
  leafHash,
  rangeNodes,
  signNote,
  type DirectoryEntry,
  type Frontier,
  type NodeId,
  type NoteSigner,
} from "@valise/core";
import type { Database } from "./schema.js";

/** C2SP tlog-tiles: tiles are 256 hashes wide and 8 tree levels high. */
export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;

export interface LogCheckpoint {
  size: number;
  rootHash: Uint8Array;
  note: string;
  createdAt: number;
}

type Append = (e: DirectoryEntry) => Promise<number>;

const nodeKey = (level: number, index: number) => `${level}/${index}`;

/**
 * The facts an entry establishes, as `directory_log_refs` keys (latest entry wins): clients get these indices with
 * directory answers and check the entries themselves.
 */
export function entryRefs(e: DirectoryEntry): string[] {
  switch (e.type) {
    case "unit.add":
      return [`unit.add/${e.unit}`];
    case "user.add":
      return [`user.add/${e.user}`, `user.clearance/${e.user}`];
    case "user.clearance":
      return [`user.clearance/${e.user}`];
    case "device.add":
      return [`device.add/${e.device}`];
    case "device.revoke":
      return [`device.revoke/${e.device}`];
  }
}

export class DirectoryLog {
  /** The frontier as of the last append this process committed; trusted only if the head still has its size. */
  private committed: Frontier = EMPTY_FRONTIER;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
  ) {}

  /**
   * Run a directory change in one transaction; `append` adds its log entries inside that transaction. If the
   * change fails, nothing is appended.
   */
  async change<T>(fn: (trx: Transaction<Database>, append: Append) => Promise<T>): Promise<T> {
    let pending: Frontier | undefined;
    const result = await this.db.transaction().execute(async (trx) => {
      const append: Append = async (e) => {
        pending = await this.appendIn(trx, e, pending);
        return pending.size - 1;
      };
      return fn(trx, append);
    });
    if (pending) this.committed = pending;
    return result;
  }

  private async appendIn(trx: Transaction<Database>, e: DirectoryEntry, inTrx?: Frontier): Promise<Frontier> {
    const data = encodeDirectoryEntry(e);
    const head = await trx
      .updateTable("directory_log_head")
      .set((eb) => ({ size: eb("size", "+", 1) }))
      .where("id", "=", 1)
      .returning("size")
      .executeTakeFirstOrThrow();
    const index = Number(head.size) - 1;
    let f = inTrx ?? this.committed;
    if (f.size !== index) f = await this.loadFrontier(trx, index);
    const leaf = leafHash(data);
    const { frontier, completed } = frontierAppend(f, leaf);
    await trx
      .insertInto("directory_log_entries")
      .values({ idx: index, data, leaf_hash: leaf, created_at: this.now() })
      .execute();
    await trx
      .insertInto("directory_log_nodes")
      .values(completed.map((n) => ({ level: n.level, idx: n.index, hash: n.hash })))
      .execute();
    for (const ref of entryRefs(e))
      await trx
        .insertInto("directory_log_refs")
        .values({ ref, idx: index })
        .onConflict((oc) => oc.column("ref").doUpdateSet({ idx: index }))
        .execute();
    return frontier;
  }

  private async loadFrontier(db: Kysely<Database>, size: number): Promise<Frontier> {
    const ids = rangeNodes(0, size);
    const got = await this.readNodes(db, ids);
    return Object.freeze({ size, hashes: Object.freeze(ids.map((n) => got(n))) });
  }

  /** Fetch stored node hashes in one query; the getter throws if one is missing (a corrupt database). */
  private async readNodes(db: Kysely<Database>, ids: readonly NodeId[]): Promise<(n: NodeId) => Uint8Array> {
    const map = new Map<string, Uint8Array>();
    const unique = [...new Map(ids.map((n) => [nodeKey(n.level, n.index), n])).values()];
    for (let i = 0; i < unique.length; i += 200) {
      const chunk = unique.slice(i, i + 200);
      const rows = await db
        .selectFrom("directory_log_nodes")
        .select(["level", "idx", "hash"])
        .where((eb) => eb.or(chunk.map((n) => eb.and([eb("level", "=", n.level), eb("idx", "=", n.index)]))))
        .execute();
      for (const r of rows) map.set(nodeKey(Number(r.level), Number(r.idx)), new Uint8Array(r.hash));
    }
    return (n) => {
      const h = map.get(nodeKey(n.level, n.index));
      if (!h) throw new ValiseError("internal", `directory log node ${nodeKey(n.level, n.index)} missing`);
      return h;
    };
  }

  /** The log index of each given fact (see `entryRefs`) that the log holds. */
  async refs(keys: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < keys.length; i += 500) {
      const rows = await this.db
        .selectFrom("directory_log_refs")
        .select(["ref", "idx"])
        .where("ref", "in", keys.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.ref, Number(r.idx));
    }
    return out;
  }

  /** The number of committed entries. */
  async size(): Promise<number> {
    const r = await this.db.selectFrom("directory_log_head").select("size").where("id", "=", 1).executeTakeFirst();
    return Number(r?.size ?? 0);
  }

  /** RFC 9162 root of the first `size` entries (size ≤ the log's size). */
  async rootAt(size: number): Promise<Uint8Array> {
    const f = await this.loadFrontier(this.db, size);
    return frontierRoot(f);
  }

  async entries(start: number, count: number): Promise<Uint8Array[]> {
    const rows = await this.db
      .selectFrom("directory_log_entries")
      .select(["idx", "data"])
      .where("idx", ">=", start)
      .where("idx", "<", start + count)
      .orderBy("idx")
      .execute();
    return rows.map((r) => new Uint8Array(r.data));
  }

  /** Inclusion proof of entry `index` in the tree of `size` entries; 400 unless index < size ≤ log size. */
  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    await this.checkSize(size);
    if (index >= size) throw new ValiseError("bad_request", `index ${index} is not below size ${size}`);
    const plan = inclusionProofPlan(index, size);
    return assembleProof(plan, await this.readNodes(this.db, plan.flat()));
  }

  /** Consistency proof from `from` to `to` entries; 400 unless 0 < from ≤ to ≤ log size. */
  async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    await this.checkSize(to);
    if (from === 0 || from > to) throw new ValiseError("bad_request", `need 0 < from ≤ to, got ${from}, ${to}`);
    const plan = consistencyProofPlan(from, to);
    return assembleProof(plan, await this.readNodes(this.db, plan.flat()));
  }

  private async checkSize(size: number): Promise<void> {
    const current = await this.size();
    if (size > current) throw new ValiseError("bad_request", `size ${size} is beyond the log size ${current}`);
  }

  /**
   * C2SP tlog-tiles tile `level`/`index` of `width` hashes (256 for a full tile), or null if the tree does not
   * have that many hashes there yet. Tile hashes are the stored nodes at tree level 8·level.
   */
  async tile(level: number, index: number, width: number): Promise<Uint8Array | null> {
    const treeLevel = level * TILE_HEIGHT;
    const available = Math.floor((await this.size()) / 2 ** treeLevel);
    const first = index * TILE_WIDTH;
    if (!isTreeIndex(first + width) || first + width > available) return null;
    const rows = await this.db
      .selectFrom("directory_log_nodes")
      .select(["idx", "hash"])
      .where("level", "=", treeLevel)
      .where("idx", ">=", first)
      .where("idx", "<", first + width)
      .orderBy("idx")
      .execute();
    if (rows.length !== width) throw new ValiseError("internal", "directory log tile incomplete");
    const out = new Uint8Array(width * 32);
    rows.forEach((r, i) => out.set(new Uint8Array(r.hash), i * 32));
    return out;
  }

  /** C2SP tlog-tiles entry bundle: big-endian uint16 length-prefixed entries, or null if not that many yet. */
  async entryBundle(index: number, width: number): Promise<Uint8Array | null> {
    const first = index * TILE_WIDTH;
    if (!isTreeIndex(first + width) || first + width > (await this.size())) return null;
    const entries = await this.entries(first, width);
    if (entries.length !== width) throw new ValiseError("internal", "directory log entries incomplete");
    const out = new Uint8Array(entries.reduce((n, e) => n + 2 + e.length, 0));
    let at = 0;
    for (const e of entries) {
      out[at] = e.length >>> 8;
      out[at + 1] = e.length & 255;
      out.set(e, at + 2);
      at += 2 + e.length;
    }
    return out;
  }

  async latestCheckpoint(): Promise<LogCheckpoint | null> {
    const r = await this.db
      .selectFrom("directory_log_checkpoints")
      .selectAll()
      .orderBy("size", "desc")
      .limit(1)
      .executeTakeFirst();
    return r
      ? { size: Number(r.size), rootHash: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) }
      : null;
  }

  /**
   * Sign and store a checkpoint of the current tree if it has grown since the latest one (or none exists yet).
   * Returns the new checkpoint, or null if there was nothing new. Safe to run from several servers at once.
   */
  async signCheckpoint(origin: string, signer: NoteSigner): Promise<LogCheckpoint | null> {
    const size = await this.size();
    const latest = await this.latestCheckpoint();
    if (latest && latest.size >= size) return null;
    const rootHash = await this.rootAt(size);
    const note = signNote(formatCheckpoint({ origin, size, rootHash, extensions: [] }), [signer]);
    const createdAt = this.now();
    await this.db
      .insertInto("directory_log_checkpoints")
      .values({ size, root_hash: rootHash, note, created_at: createdAt })
      .onConflict((oc) => oc.column("size").doNothing())
      .execute();
    return { size, rootHash, note, createdAt };
  }

  /** Pin the log's verifier key on first use; refuse a different key later (it would look like a second log). */
  async pinVerifierKey(vkey: string): Promise<void> {
    const row = await this.db.selectFrom("log_keys").select("vkey").where("log", "=", "directory").executeTakeFirst();
    if (!row) {
      await this.db
        .insertInto("log_keys")
        .values({ log: "directory", vkey, created_at: this.now() })
        .onConflict((oc) => oc.column("log").doNothing())
        .execute();
      return this.pinVerifierKey(vkey);
    }
    if (row.vkey !== vkey)
      throw new ValiseError(
        "conflict",
        `this database's directory log is signed by ${row.vkey}, not by the configured log key ${vkey}; ` +
          "restore the original log-key file (or VALISE_LOG_KEY)",
      );
  }
}
