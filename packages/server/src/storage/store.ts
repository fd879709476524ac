/** The server's storage facade: one database, the directory, the conversation logs, documents, cables and blobs. */
import { join } from "node:path";
import { ValiseError, systemClock, type Clock } from "@valise/core";
import { type DbHandle, type DbOptions, openDatabase } from "./db.js";
import { DirectoryStore } from "./directory-store.js";
import { ConversationStore } from "./conversation-store.js";
import { AuditLog } from "./audit-log.js";
import { type BlobStore, FsBlobStore } from "./blob-store.js";
import { BlobMetaStore } from "./blob-meta.js";
import { PgBlobStore } from "./pg-blob-store.js";
import { DocumentStore } from "./document-store.js";
import { CableStore } from "./cable-store.js";
import { RetentionStore } from "./retention.js";

export interface Store {
  handle: DbHandle;
  directory: DirectoryStore;
  conversations: ConversationStore;
  /** The audit log (DESIGN.md §3): every access to stored data, one event each. */
  audit: AuditLog;
  /** Blob bytes (by default files under DATA/blobs/) and their metadata. */
  blobBytes: BlobStore;
  blobs: BlobMetaStore;
  documents: DocumentStore;
  cables: CableStore;
  /** Retention rules of ciphertext and their enforcement (issue 19). */
  retention: RetentionStore;
  close(): Promise<void>;
}

export async function openStore(
  opts: DbOptions & {
    clock?: Clock;
    /**
     * Where blob bytes go: a BlobStore, or "pg" (in the PostgreSQL database: several server nodes share them) or "fs"
     * (files under `blobDir`, default DATA/blobs/: one node, or a directory every node mounts). Default "fs".
     */
    blobStore?: BlobStore | "fs" | "pg";
    blobDir?: string;
    /** Session lifetime (default SESSION_TTL_MS, 1 h) and enrollment-code lifetime (default 7 days). */
    sessionTtlMs?: number | undefined;
    enrollmentCodeTtlMs?: number | undefined;
  },
): Promise<Store> {
  const handle = await openDatabase(opts);
  const now = () => (opts.clock ?? systemClock).now();
  const audit = new AuditLog(handle.db, now, handle.sqlite);
  const directory = new DirectoryStore(handle.db, now, audit, handle.sqlite);
  if (opts.sessionTtlMs !== undefined) directory.sessionTtlMs = opts.sessionTtlMs;
  if (opts.enrollmentCodeTtlMs !== undefined) directory.enrollmentTtlMs = opts.enrollmentCodeTtlMs;
  let blobBytes: BlobStore;
  if (opts.blobStore === "pg") {
    if (handle.dialect !== "postgres") {
      await handle.close();
      throw new ValiseError("bad_request", "the pg blob store needs PostgreSQL (VALISE_DATABASE_URL)");
    }
    blobBytes = new PgBlobStore(handle.db);
  } else if (opts.blobStore === undefined || opts.blobStore === "fs")
    blobBytes = new FsBlobStore(opts.blobDir ?? join(opts.dataDir, "blobs"));
  else blobBytes = opts.blobStore;
  return {
    handle,
    directory,
    conversations: new ConversationStore(handle.db, now, handle.sqlite, audit),
    audit,
    blobBytes,
    blobs: new BlobMetaStore(handle.db, now),
    documents: new DocumentStore(handle.db, now),
    cables: new CableStore(handle.db, now),
    retention: new RetentionStore(handle.db, blobBytes, audit, now),
    close: () => handle.close(),
  };
}
