/**
 * Readiness (`GET /readyz`): can this server store and read right now? Liveness (`/healthz`) only says the process
 * answers. Checked here: a read, a committed write through the database (an expired one-time challenge row,
 * inserted and deleted: the same transaction path and disk as every audit append, nothing visible to anyone), a
 * flushed write in the data directory and the blob directory (a full disk or a read-only file system), and that
 * the audit log's last append did not fail since its last success within the last few seconds.
 */
import { mkdirSync } from "node:fs";
import { open, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { randomId } from "@valise/core";
import type { Store } from "../storage/store.js";
import { FsBlobStore } from "../storage/blob-store.js";
import type { AuditRecorder } from "../audit/recorder.js";

export interface Readiness {
  ready: boolean;
  read: boolean;
  write: boolean;
  disk: boolean;
  auditAppend: "ok" | "failing";
  error?: string;
}

/** An audit append failure this recent (ms) keeps readiness false even if the probes pass. */
const AUDIT_FAILURE_WINDOW_MS = 5000;
const PROBE_TIMEOUT_MS = 3000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out`)), PROBE_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function diskProbe(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `.readyz-${process.pid}-${randomId("c").slice(2, 10)}`);
  try {
    const fh = await open(file, "w", 0o600);
    try {
      await fh.write(new Uint8Array(4096));
      await fh.sync();
    } finally {
      await fh.close();
    }
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

export async function readiness(store: Store, audit: AuditRecorder): Promise<Readiness> {
  const errors: string[] = [];
  const db = store.handle.db;
  let read = true;
  let write = true;
  let disk = true;
  try {
    await withTimeout(db.selectFrom("units").select("name").limit(1).execute(), "database read");
  } catch (e) {
    read = false;
    errors.push(`database read: ${message(e)}`);
  }
  if (read) {
    const challenge = `readyz-${randomId("c").slice(2)}`;
    try {
      await withTimeout(
        (async () => {
          await db.insertInto("challenges").values({ challenge, device_id: "readyz", expires_at: 0 }).execute();
          await db.deleteFrom("challenges").where("challenge", "=", challenge).execute();
        })(),
        "database write",
      );
    } catch (e) {
      write = false;
      errors.push(`database write: ${message(e)}`);
    }
  } else write = false;
  const dirs = new Set<string>();
  if (store.handle.files[0]) dirs.add(dirname(store.handle.files[0]));
  if (store.blobBytes instanceof FsBlobStore) dirs.add(store.blobBytes.dir);
  for (const dir of dirs) {
    try {
      await withTimeout(diskProbe(dir), "disk write");
    } catch (e) {
      disk = false;
      errors.push(`disk write in ${dir}: ${message(e)}`);
    }
  }
  const failing =
    audit.lastFailureAt !== null &&
    (audit.lastSuccessAt === null || audit.lastSuccessAt < audit.lastFailureAt) &&
    Date.now() - audit.lastFailureAt < AUDIT_FAILURE_WINDOW_MS;
  if (failing) errors.push("audit log append failing");
  const ready = read && write && disk && !failing;
  return {
    ready,
    read,
    write,
    disk,
    auditAppend: failing ? "failing" : "ok",
    ...(errors.length > 0 ? { error: errors.join("; ") } : {}),
  };
}
