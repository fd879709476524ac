/** The server's storage facade: one database, the directory and the conversation logs. */
import { systemClock, type Clock } from "@valise/core";
import { type DbHandle, type DbOptions, openDatabase } from "./db.js";
import { DirectoryStore } from "./directory-store.js";
import { ConversationStore } from "./conversation-store.js";
import { AuditLog } from "./audit-log.js";

export interface Store {
  handle: DbHandle;
  directory: DirectoryStore;
  conversations: ConversationStore;
  /** The audit log (DESIGN.md §3): every access to stored data, one event each. */
  audit: AuditLog;
  close(): Promise<void>;
}

export async function openStore(opts: DbOptions & { clock?: Clock }): Promise<Store> {
  const handle = await openDatabase(opts);
  const now = () => (opts.clock ?? systemClock).now();
  const audit = new AuditLog(handle.db, now, handle.sqlite);
  return {
    handle,
    directory: new DirectoryStore(handle.db, now, audit),
    conversations: new ConversationStore(handle.db, now, handle.sqlite, audit),
    audit,
    close: () => handle.close(),
  };
}
