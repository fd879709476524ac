/**
 * The directory log (DESIGN.md §3 "Key transparency"): an RFC 9162 Merkle tree whose leaves are the canonical
 * encodings of directory changes. Every change appends its leaf in the same database transaction as the change
 * (`DirectoryLog.change`), so the directory and the log never disagree. The tree, proofs, tiles and checkpoints are
 * the shared `MerkleLog` (merkle-log.ts) over the `directory_log_*` tables; this class adds directory changes and
 * the `directory_log_refs` index of facts.
 */
import type { Kysely, Transaction } from "kysely";
import type SQLite from "better-sqlite3";
import { encodeDirectoryEntry, type DirectoryEntry, type Frontier } from "@valise/core";
import type { Database } from "./schema.js";
import { MerkleLog } from "./merkle-log.js";
import { run, type Steps } from "./sql-steps.js";

export { TILE_HEIGHT, TILE_WIDTH, type LogCheckpoint } from "./merkle-log.js";

type Append = (e: DirectoryEntry) => Promise<number>;

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
    case "unit.label":
      return [`unit.add/${e.unit}`];
    case "unit.share":
      return [`unit.share/${e.unit}`];
    case "member.add":
    case "member.remove":
    case "archive.assign":
    case "archive.remove":
      return [`member/${e.user}/${e.unit}`];
    case "user.role":
      return [`user.role/${e.user}`];
    case "user.disable":
    case "user.enable":
      return [`user.state/${e.user}`];
  }
}

/** Point each fact at the entry that established it (latest wins). */
function* refSteps(refs: readonly string[], index: number): Steps<void> {
  for (const ref of refs)
    yield* run(
      "INSERT INTO directory_log_refs (ref, idx) VALUES (?, ?) ON CONFLICT (ref) DO UPDATE SET idx = excluded.idx",
      ref,
      index,
    );
}

export class DirectoryLog extends MerkleLog {
  constructor(db: Kysely<Database>, now: () => number, sqlite?: SQLite.Database) {
    super(db, now, { name: "directory", sqlite });
  }

  /**
   * Run a directory change in one transaction; `append` adds its log entries inside that transaction. If the
   * change fails, nothing is appended.
   */
  async change<T>(fn: (trx: Transaction<Database>, append: Append) => Promise<T>): Promise<T> {
    let pending: Frontier | undefined;
    const result = await this.db.transaction().execute(async (trx) => {
      const append: Append = async (e) => {
        pending = await this.appendIn(trx, [{ data: encodeDirectoryEntry(e) }], pending);
        const index = pending.size - 1;
        await this.runIn(trx, refSteps(entryRefs(e), index));
        return index;
      };
      return fn(trx, append);
    });
    this.noteCommitted(pending);
    return result;
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
}
