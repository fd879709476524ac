/**
 * Log-key rotation (issue 19): the old key signs a hand-over naming the new key and the directory and audit log
 * sizes from which it signs (core key-handover.ts); the hand-over is stored in `log_handovers` and served at
 * GET /v1/log/directory/key-handovers; the database's pin (`log_keys`) moves to the new key in the same transaction;
 * the current trees are signed again with the new key, so the next checkpoint served is the new key's.
 *
 * Run with every server of the database stopped: a server still running signs with the key it started with, and
 * devices that followed the hand-over refuse its checkpoints past the hand-over (an alert, no silent acceptance).
 */
import {
  ValiseError,
  auditLogOrigin,
  formatCheckpoint,
  signKeyHandover,
  signNote,
  type KeyHandover,
} from "@valise/core";
import type { Kysely } from "kysely";
import type { LogKey } from "./log-key.js";
import type { MerkleLog } from "./merkle-log.js";
import type { Database } from "./schema.js";

export interface LogHandoverRecord extends KeyHandover {
  note: string;
  createdAt: number;
}

/** Every hand-over, oldest first. */
export async function listLogHandovers(db: Kysely<Database>): Promise<LogHandoverRecord[]> {
  const rows = await db
    .selectFrom("log_handovers")
    .selectAll()
    .orderBy("created_at")
    .orderBy("directory_size")
    .execute();
  return rows.map((r) => ({
    origin: /^origin (.*)$/m.exec(r.note)?.[1] ?? "",
    oldKey: r.old_vkey,
    newKey: r.new_vkey,
    directorySize: Number(r.directory_size),
    auditSize: Number(r.audit_size),
    note: r.note,
    createdAt: Number(r.created_at),
  }));
}

/** Sign the current tree of `log` with `key` under `origin`, replacing a checkpoint of the same size. */
async function resign(db: Kysely<Database>, log: MerkleLog, origin: string, key: LogKey, now: number) {
  // Every log's checkpoint table has the directory log's columns (merkle-log.ts).
  const table = `${log.name}_log_checkpoints` as "directory_log_checkpoints";
  const size = await log.size();
  const rootHash = await log.rootAt(size);
  const note = signNote(formatCheckpoint({ origin, size, rootHash, extensions: [] }), [key.signer]);
  await db
    .insertInto(table)
    .values({ size, root_hash: rootHash, note, created_at: now })
    .onConflict((oc) => oc.column("size").doUpdateSet({ note, root_hash: rootHash, created_at: now }))
    .execute();
}

export async function rotateLogKey(o: {
  db: Kysely<Database>;
  directory: MerkleLog;
  audit: MerkleLog;
  oldKey: LogKey;
  newKey: LogKey;
  now: number;
}): Promise<LogHandoverRecord> {
  const { db, oldKey, newKey } = o;
  if (oldKey.origin !== newKey.origin)
    throw new ValiseError("bad_request", `the new key must be named ${oldKey.origin} (the log's origin)`);
  // The database must pin the old key for both logs: only the key in force can hand over.
  await o.directory.pinVerifierKey(oldKey.vkey);
  await o.audit.pinVerifierKey(oldKey.vkey);
  const handover: KeyHandover = {
    origin: oldKey.origin,
    oldKey: oldKey.vkey,
    newKey: newKey.vkey,
    directorySize: await o.directory.size(),
    auditSize: await o.audit.size(),
  };
  const note = signKeyHandover(handover, oldKey.signer, newKey.signer);
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("log_handovers")
      .values({
        old_vkey: handover.oldKey,
        new_vkey: handover.newKey,
        directory_size: handover.directorySize,
        audit_size: handover.auditSize,
        note,
        created_at: o.now,
      })
      .execute();
    const r = await trx
      .updateTable("log_keys")
      .set({ vkey: newKey.vkey })
      .where("log", "in", ["directory", "audit"])
      .where("vkey", "=", oldKey.vkey)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 2)
      throw new ValiseError("conflict", "the log key changed while rotating; nothing was rotated");
  });
  await resign(db, o.directory, newKey.origin, newKey, o.now);
  await resign(db, o.audit, auditLogOrigin(newKey.origin), newKey, o.now);
  return { ...handover, note, createdAt: o.now };
}
