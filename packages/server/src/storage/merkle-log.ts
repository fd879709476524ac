/**
 * An RFC 9162 Merkle log in SQL tables, shared by the directory log and the audit log (DESIGN.md §3): entries, every
 * perfect-subtree hash an append completes (`frontierAppend`), so proofs and C2SP tlog-tiles are read from the
 * database, never rehashed; signed checkpoints; a one-row head whose UPDATE serializes appends (its row lock on
 * PostgreSQL, the write lock on SQLite); the primary key on the entry index makes a fork impossible even so.
 *
 * Each log has its own tables, `<prefix>_head`, `<prefix>_entries`, `<prefix>_nodes`, `<prefix>_checkpoints`, with
 * the same columns. The code below is written once against a virtual schema (`log_head`, …) and a Kysely plugin
 * renames the tables to the log's own. A log may carry extra (indexed) columns on its entries, filled per append.
 *
 * On SQLite, `appendBatch` runs prepared statements in one synchronous transaction (as the message appender does):
 * a Kysely transaction would yield between statements and hold the single connection across unrelated requests.
 */
import {
  type Kysely,
  type KyselyPlugin,
  OperationNodeTransformer,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  TableNode,
  type Transaction,
  type UnknownRow,
} from "kysely";
import type SQLite from "better-sqlite3";
import { hash } from "node:crypto";
import {
  EMPTY_FRONTIER,
  ValiseError,
  assembleProof,
  consistencyProofPlan,
  formatCheckpoint,
  frontierAppend,
  frontierRoot,
  inclusionProofPlan,
  isTreeIndex,
  leafHash,
  rangeNodes,
  setMerkleSha256,
  signNote,
  type Frontier,
  type NodeId,
  type NoteSigner,
} from "@valise/core";
import type { Database } from "./schema.js";
import { all, dialectOf, insert, one, runAsync, SyncRunner, type Steps } from "./sql-steps.js";

// The tree hashes (leaves, completed subtrees, roots, proofs) through node:crypto: several times faster than the
// JavaScript SHA-256 core uses in browsers (core checks it against its own on test vectors).
setMerkleSha256(
  (...parts) => new Uint8Array(hash("sha256", parts.length === 1 ? parts[0]! : Buffer.concat(parts), "buffer")),
);

/** C2SP tlog-tiles: tiles are 256 hashes wide and 8 tree levels high. */
export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;

export interface LogCheckpoint {
  size: number;
  rootHash: Uint8Array;
  note: string;
  createdAt: number;
}

/** The virtual schema every log's queries are written against (renamed per log by `RenameTables`). */
interface LogSchema {
  log_head: Database["directory_log_head"];
  log_entries: Database["directory_log_entries"] & Record<string, unknown>;
  log_nodes: Database["directory_log_nodes"];
  log_checkpoints: Database["directory_log_checkpoints"];
  log_keys: Database["log_keys"];
}

class RenameTables extends OperationNodeTransformer {
  constructor(private readonly map: Record<string, string>) {
    super();
  }
  protected override transformTable(node: TableNode): TableNode {
    const t = super.transformTable(node);
    const to = this.map[t.table.identifier.name];
    return to ? TableNode.create(to) : t;
  }
}

class RenamePlugin implements KyselyPlugin {
  private readonly t: RenameTables;
  constructor(map: Record<string, string>) {
    this.t = new RenameTables(map);
  }
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.t.transformNode(args.node);
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

/** One entry to append: its leaf bytes, and values for the log's extra entry columns. */
export interface LogItem {
  data: Uint8Array;
  columns?: Record<string, string | number | Uint8Array | null>;
}

export interface MerkleLogOptions {
  /** The log's name: its row in `log_keys` and its table prefix (`<name>_log_…`). */
  name: string;
  /** Extra columns of `<name>_log_entries` that appends fill (from `LogItem.columns`). */
  extraColumns?: readonly string[];
  /** The raw SQLite connection, for the synchronous batch append. */
  sqlite?: SQLite.Database | undefined;
}

const nodeKey = (level: number, index: number) => `${level}/${index}`;

export class MerkleLog {
  /** The frontier as of the last append this process committed; trusted only if the head still has its size. */
  protected committed: Frontier = EMPTY_FRONTIER;
  /** Queries on this log's tables (the virtual schema, renamed). */
  protected readonly ldb: Kysely<LogSchema>;
  readonly name: string;
  private readonly plugin: RenamePlugin;
  private readonly extra: readonly string[];
  private readonly fast: SqliteLogAppender | null;
  /** The log's table prefix (`<name>_log`). */
  private readonly prefix: string;
  private readonly dialect: "sqlite" | "postgres";

  constructor(
    protected readonly db: Kysely<Database>,
    protected readonly now: () => number,
    opts: MerkleLogOptions,
  ) {
    this.name = opts.name;
    const p = `${opts.name}_log`;
    this.extra = opts.extraColumns ?? [];
    this.plugin = new RenamePlugin({
      log_head: `${p}_head`,
      log_entries: `${p}_entries`,
      log_nodes: `${p}_nodes`,
      log_checkpoints: `${p}_checkpoints`,
    });
    this.ldb = db.withPlugin(this.plugin) as unknown as Kysely<LogSchema>;
    this.prefix = p;
    this.dialect = dialectOf(db);
    this.fast = opts.sqlite ? new SqliteLogAppender(opts.sqlite) : null;
  }

  protected onTrx(trx: Transaction<Database>): Kysely<LogSchema> {
    return trx.withPlugin(this.plugin) as unknown as Kysely<LogSchema>;
  }

  /**
   * Append items inside the caller's transaction; returns the frontier after them (the caller records it as
   * committed once its transaction has committed). `inTrx` is the frontier of earlier appends in the same one.
   */
  protected async appendIn(trx: Transaction<Database>, items: readonly LogItem[], inTrx?: Frontier): Promise<Frontier> {
    return this.runIn(trx, appendLogSteps(this.prefix, this.extra, items, inTrx ?? this.committed, this.now()));
  }

  /**
   * Runs steps inside the caller's transaction `trx`. On SQLite that transaction is open on the one better-sqlite3
   * connection the synchronous runner also holds, so the steps run there directly, on statements prepared once
   * (Kysely's SQLite driver prepares every statement again on every call: most of a directory change's time).
   */
  protected async runIn<T>(trx: Transaction<Database>, steps: Steps<T>): Promise<T> {
    if (this.fast?.inTransaction()) return this.fast.runner.run(steps);
    return runAsync(trx, this.dialect, steps);
  }

  /**
   * Append items in one transaction of their own (one commit, one fsync, for the whole batch). Returns the index of
   * the first. Durable when it resolves; nothing appended if it rejects.
   */
  async appendBatch(items: readonly LogItem[]): Promise<number> {
    if (items.length === 0) return this.size();
    if (this.fast?.idle()) {
      const f = this.fast.append(appendLogSteps(this.prefix, this.extra, items, this.committed, this.now()));
      this.committed = f;
      return f.size - items.length;
    }
    let pending: Frontier | undefined;
    await this.db.transaction().execute(async (trx) => {
      pending = await this.appendIn(trx, items);
    });
    this.committed = pending!;
    return pending!.size - items.length;
  }

  /**
   * On SQLite, append inside the caller's open better-sqlite3 transaction (a savepoint of it) and return the
   * frontier after the items; undefined without the synchronous path. The caller passes that frontier to
   * `noteCommitted` once its transaction has committed (a rolled-back frontier must not be kept).
   */
  appendWithinSqlite(items: readonly LogItem[]): Frontier | undefined {
    if (!this.fast || items.length === 0) return undefined;
    return this.fast.append(appendLogSteps(this.prefix, this.extra, items, this.committed, this.now()));
  }

  /** Append inside the caller's Kysely transaction; see `appendWithinSqlite` for the returned frontier. */
  appendItemsIn(trx: Transaction<Database>, items: readonly LogItem[]): Promise<Frontier> {
    return this.appendIn(trx, items);
  }

  /**
   * Record the frontier of an append whose (caller's) transaction has committed. Only ever a newer one: an older
   * or stale frontier is harmless anyway, as every append checks it against the head's size first.
   */
  noteCommitted(f: Frontier | undefined): void {
    if (f && f.size > this.committed.size) this.committed = f;
  }

  protected async loadFrontier(db: Kysely<LogSchema>, size: number): Promise<Frontier> {
    const ids = rangeNodes(0, size);
    const got = await this.readNodes(db, ids);
    return Object.freeze({ size, hashes: Object.freeze(ids.map((n) => got(n))) });
  }

  /** Fetch stored node hashes in one query; the getter throws if one is missing (a corrupt database). */
  private async readNodes(db: Kysely<LogSchema>, ids: readonly NodeId[]): Promise<(n: NodeId) => Uint8Array> {
    const map = new Map<string, Uint8Array>();
    const unique = [...new Map(ids.map((n) => [nodeKey(n.level, n.index), n])).values()];
    for (let i = 0; i < unique.length; i += 200) {
      const chunk = unique.slice(i, i + 200);
      const rows = await db
        .selectFrom("log_nodes")
        .select(["level", "idx", "hash"])
        .where((eb) => eb.or(chunk.map((n) => eb.and([eb("level", "=", n.level), eb("idx", "=", n.index)]))))
        .execute();
      for (const r of rows) map.set(nodeKey(Number(r.level), Number(r.idx)), new Uint8Array(r.hash));
    }
    return (n) => {
      const h = map.get(nodeKey(n.level, n.index));
      if (!h) throw new ValiseError("internal", `${this.name} log node ${nodeKey(n.level, n.index)} missing`);
      return h;
    };
  }

  /** The number of committed entries. */
  async size(): Promise<number> {
    const r = await this.ldb.selectFrom("log_head").select("size").where("id", "=", 1).executeTakeFirst();
    return Number(r?.size ?? 0);
  }

  /** RFC 9162 root of the first `size` entries (size ≤ the log's size). */
  async rootAt(size: number): Promise<Uint8Array> {
    const f = await this.loadFrontier(this.ldb, size);
    return frontierRoot(f);
  }

  async entries(start: number, count: number): Promise<Uint8Array[]> {
    const rows = await this.ldb
      .selectFrom("log_entries")
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
    return assembleProof(plan, await this.readNodes(this.ldb, plan.flat()));
  }

  /** Consistency proof from `from` to `to` entries; 400 unless 0 < from ≤ to ≤ log size. */
  async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    await this.checkSize(to);
    if (from === 0 || from > to) throw new ValiseError("bad_request", `need 0 < from ≤ to, got ${from}, ${to}`);
    const plan = consistencyProofPlan(from, to);
    return assembleProof(plan, await this.readNodes(this.ldb, plan.flat()));
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
    const rows = await this.ldb
      .selectFrom("log_nodes")
      .select(["idx", "hash"])
      .where("level", "=", treeLevel)
      .where("idx", ">=", first)
      .where("idx", "<", first + width)
      .orderBy("idx")
      .execute();
    if (rows.length !== width) throw new ValiseError("internal", `${this.name} log tile incomplete`);
    const out = new Uint8Array(width * 32);
    rows.forEach((r, i) => out.set(new Uint8Array(r.hash), i * 32));
    return out;
  }

  /** C2SP tlog-tiles entry bundle: big-endian uint16 length-prefixed entries, or null if not that many yet. */
  async entryBundle(index: number, width: number): Promise<Uint8Array | null> {
    const first = index * TILE_WIDTH;
    if (!isTreeIndex(first + width) || first + width > (await this.size())) return null;
    const entries = await this.entries(first, width);
    if (entries.length !== width) {
      if (first < (await this.pruned()).before) return null; // exported and pruned
      throw new ValiseError("internal", `${this.name} log entries incomplete`);
    }
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

  /**
   * The index below which entries were exported and pruned (0: none), with the frontier of that prefix (its
   * perfect-subtree roots, largest first), which is all a reader needs to hash the remaining entries into the root.
   */
  async pruned(): Promise<{ before: number; frontier: Uint8Array[] }> {
    const r = await this.db
      .selectFrom("log_prune")
      .select("pruned_before")
      .where("log", "=", this.name)
      .executeTakeFirst();
    const before = Number(r?.pruned_before ?? 0);
    if (before === 0) return { before, frontier: [] };
    return { before, frontier: [...(await this.loadFrontier(this.ldb, before)).hashes] };
  }

  /**
   * Deletes the entries below `before` (retention of an exported segment: the caller has checked the export). The
   * node hashes stay, so every inclusion and consistency proof, tile of hashes and checkpoint still verifies; only
   * the entries' bytes (and their indexed columns) are gone. Never moves backwards. Returns the entries deleted.
   */
  async pruneBefore(before: number): Promise<number> {
    const size = await this.size();
    if (!Number.isSafeInteger(before) || before < 0 || before > size)
      throw new ValiseError("bad_request", `cannot prune below ${before}: the ${this.name} log has ${size} entries`);
    return this.db.transaction().execute(async (trx) => {
      const cur = await trx
        .selectFrom("log_prune")
        .select("pruned_before")
        .where("log", "=", this.name)
        .executeTakeFirst();
      const from = Number(cur?.pruned_before ?? 0);
      if (before <= from) return 0;
      const del = await this.onTrx(trx).deleteFrom("log_entries").where("idx", "<", before).executeTakeFirst();
      if (cur)
        await trx
          .updateTable("log_prune")
          .set({ pruned_before: before, pruned_at: this.now() })
          .where("log", "=", this.name)
          .execute();
      else
        await trx
          .insertInto("log_prune")
          .values({ log: this.name, pruned_before: before, pruned_at: this.now() })
          .execute();
      return Number(del.numDeletedRows);
    });
  }

  async latestCheckpoint(): Promise<LogCheckpoint | null> {
    const r = await this.ldb
      .selectFrom("log_checkpoints")
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
    await this.ldb
      .insertInto("log_checkpoints")
      .values({ size, root_hash: rootHash, note, created_at: createdAt })
      .onConflict((oc) => oc.column("size").doNothing())
      .execute();
    return { size, rootHash, note, createdAt };
  }

  /** Pin the log's verifier key on first use; refuse a different key later (it would look like a second log). */
  async pinVerifierKey(vkey: string): Promise<void> {
    const row = await this.db.selectFrom("log_keys").select("vkey").where("log", "=", this.name).executeTakeFirst();
    if (!row) {
      await this.db
        .insertInto("log_keys")
        .values({ log: this.name, vkey, created_at: this.now() })
        .onConflict((oc) => oc.column("log").doNothing())
        .execute();
      return this.pinVerifierKey(vkey);
    }
    if (row.vkey !== vkey)
      throw new ValiseError(
        "conflict",
        `this database's ${this.name} log is signed by ${row.vkey}, not by the configured log key ${vkey}; ` +
          "restore the original log-key file (or VALISE_LOG_KEY)",
      );
  }
}

/**
 * One batch append to a log, written once (run synchronously on better-sqlite3, through Kysely otherwise:
 * sql-steps.ts): the head's conditional size bump serializes appends, the frontier is rebuilt from stored nodes when
 * another process appended since `committed`, then the entries and every perfect-subtree hash they complete.
 */
function* appendLogSteps(
  prefix: string,
  extra: readonly string[],
  items: readonly LogItem[],
  committed: Frontier,
  now: number,
): Steps<Frontier> {
  const head = yield* one<{ size: number | string }>(
    `UPDATE ${prefix}_head SET size = size + ? WHERE id = 1 RETURNING size`,
    items.length,
  );
  if (!head) throw new ValiseError("internal", `${prefix} has no head row`);
  const first = Number(head.size) - items.length;
  let f = committed;
  if (f.size !== first) {
    // Another process appended since: rebuild the frontier from stored nodes (at most log2(size) of them).
    const ids = rangeNodes(0, first);
    const got = new Map<string, Uint8Array>();
    if (ids.length > 0) {
      const rows = yield* all<{ level: number | string; idx: number | string; hash: Uint8Array }>(
        `SELECT level, idx, hash FROM ${prefix}_nodes WHERE ${ids.map(() => "(level = ? AND idx = ?)").join(" OR ")}`,
        ...ids.flatMap((n) => [n.level, n.index]),
      );
      for (const r of rows) got.set(nodeKey(Number(r.level), Number(r.idx)), new Uint8Array(r.hash));
    }
    const hashes = ids.map((n) => {
      const h = got.get(nodeKey(n.level, n.index));
      if (!h) throw new ValiseError("internal", `${prefix} node ${nodeKey(n.level, n.index)} missing`);
      return h;
    });
    f = Object.freeze({ size: first, hashes: Object.freeze(hashes) });
  }
  const entries: unknown[][] = [];
  const nodes: unknown[][] = [];
  for (const [i, it] of items.entries()) {
    const leaf = leafHash(it.data);
    const r = frontierAppend(f, leaf);
    f = r.frontier;
    entries.push([first + i, it.data, leaf, now, ...extra.map((c) => it.columns?.[c] ?? null)]);
    for (const n of r.completed) nodes.push([n.level, n.index, n.hash]);
  }
  yield* insert(`${prefix}_entries`, ["idx", "data", "leaf_hash", "created_at", ...extra], entries);
  yield* insert(`${prefix}_nodes`, ["level", "idx", "hash"], nodes);
  return f;
}

/** The SQLite batch append: `appendLogSteps` in one synchronous better-sqlite3 transaction, statements prepared once. */
class SqliteLogAppender {
  private readonly tx: (steps: Steps<Frontier>) => Frontier;
  readonly runner: SyncRunner;
  constructor(private readonly sqlite: SQLite.Database) {
    const runner = (this.runner = new SyncRunner(sqlite));
    // BEGIN IMMEDIATE (take the write lock first, waiting busy_timeout): see storage/db.ts
    const tx = sqlite.transaction((steps: Steps<Frontier>) => runner.run(steps));
    this.tx = (steps) => tx.immediate(steps);
  }

  idle(): boolean {
    return this.runner.idle();
  }

  /** A transaction is open on the connection (inside a Kysely `trx`: that one). */
  inTransaction(): boolean {
    return !this.runner.idle();
  }

  append(steps: Steps<Frontier>): Frontier {
    return this.tx(steps);
  }
}
