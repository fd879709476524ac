/** The server's storage facade: one database, the directory and the conversation logs. */
import { systemClock, type Clock } from "@valise/core";
import { type DbHandle, type DbOptions, openDatabase } from "./db.js";
import { DirectoryStore } from "./directory-store.js";
import { ConversationStore } from "./conversation-store.js";

export interface Store {
  handle: DbHandle;
  directory: DirectoryStore;
  conversations: ConversationStore;
  close(): Promise<void>;
}

export async function openStore(opts: DbOptions & { clock?: Clock }): Promise<Store> {
  const handle = await openDatabase(opts);
  const now = () => (opts.clock ?? systemClock).now();
  return {
    handle,
    directory: new DirectoryStore(handle.db, now),
    conversations: new ConversationStore(handle.db, now, handle.sqlite),
    close: () => handle.close(),
  };
}
