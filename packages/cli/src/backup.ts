/**
 * `valise admin backup` and `valise admin restore`: an online, consistent copy of a server's state — the database
 * (SQLite: better-sqlite3's online backup API, a consistent snapshot while the server keeps writing), the data
 * directory's log key and blob files — and its restore into an empty data directory.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LOG_KEY_FILE, openStore } from "@valise/server";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { versionInfo } from "./version.js";

export const BACKUP_USAGE = `usage: valise admin backup --out DIR [--data DIR] [--json]
       valise admin restore --from DIR --data DIR [--json]

backup   an online copy while the server runs, into DIR (created; must not exist or be empty), mode 0700:
         SQLite: valise.sqlite, a consistent snapshot taken with SQLite's online backup API (writers go on);
         the data directory's log-key (the directory/audit log signing key; absent when VALISE_LOG_KEY is used:
         keep that secret yourself), blobs/ (document and attachment ciphertext) and every other file there;
         backup.json: release, schema, time, and the size and root of both logs at the time of the copy.
         The database is copied first, then the files: a blob deleted in between is missing (answers 404),
         one uploaded in between is an unreferenced extra file. Archive DIR with tar if you need one file.
         PostgreSQL (VALISE_DATABASE_URL): the data directory's files are copied the same way and the pg_dump
         command to run for the database is printed (pg_dump is not run for you).
restore  into an empty (or new) data directory DIR from a backup DIR: refuses a non-empty one. SQLite: the
         database, log key and blobs are put in place, the database opened (migrations) and its log sizes
         printed; start valise serve --data DIR. PostgreSQL: the files are restored, the pg_restore command is
         printed. The log signing key is pinned in the database: a backup restored with another key is refused
         at start-up.
A restored backup is the state at the time of the copy: checkpoints published after it (which clients and
witnesses have seen) are larger than the restored log, and witnesses and clients refuse a log that went back
(rollback). Restore only the latest backup, and see README "Backup and restore" for what to do otherwise.`;

const DB_FILES = new Set(["valise.sqlite", "valise.sqlite-wal", "valise.sqlite-shm"]);

interface LogState {
  size: number;
  checkpointSize: number | null;
  checkpointRoot: string | null;
}

interface Manifest {
  format: "valise-backup-1";
  createdAt: string;
  database: "sqlite" | "postgres";
  valise: string;
  schema: string;
  logKey: "file" | "VALISE_LOG_KEY";
  files: string[];
  logs: { directory: LogState; audit: LogState };
}

async function logState(log: {
  size(): Promise<number>;
  latestCheckpoint(): Promise<{ size: number; rootHash: Uint8Array } | null>;
}): Promise<LogState> {
  const c = await log.latestCheckpoint();
  return {
    size: await log.size(),
    checkpointSize: c?.size ?? null,
    checkpointRoot: c ? Buffer.from(c.rootHash).toString("hex") : null,
  };
}

function emptyOrAbsent(dir: string, what: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new UsageError(`${what} ${dir} exists and is not a directory`);
  if (readdirSync(dir).length > 0) throw new UsageError(`${what} ${dir} is not empty: refusing to overwrite it`);
}

/** Copy every file of `from` except the database files into `to`, keeping modes; the relative paths copied. */
function copyDataFiles(from: string, to: string): string[] {
  const copied: string[] = [];
  for (const name of readdirSync(from)) {
    if (DB_FILES.has(name) || name === "backup.json" || name === "valise.pgdump") continue;
    cpSync(join(from, name), join(to, name), { recursive: true, preserveTimestamps: true, errorOnExist: true });
    copied.push(statSync(join(from, name)).isDirectory() ? `${name}/` : name);
  }
  return copied;
}

async function backup(values: { out?: string; data?: string; json?: boolean }): Promise<number> {
  const out = resolve(str(values.out, "--out DIR", BACKUP_USAGE));
  const dataDir = resolve(values.data ?? "./valise-data");
  if (!existsSync(dataDir)) throw new UsageError(`no data directory ${dataDir}`);
  emptyOrAbsent(out, "--out");
  process.umask(0o077);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const databaseUrl = process.env.VALISE_DATABASE_URL;
  const store = await openStore({ dataDir, databaseUrl });
  let manifest: Manifest;
  const started = Date.now();
  try {
    const v = await versionInfo();
    // Log sizes before the copy: the copy holds at least these entries.
    const logs = { directory: await logState(store.directory.log), audit: await logState(store.audit) };
    if (store.handle.sqlite) await store.handle.sqlite.backup(join(out, "valise.sqlite"));
    const files = [...(store.handle.sqlite ? ["valise.sqlite"] : []), ...copyDataFiles(dataDir, out)];
    manifest = {
      format: "valise-backup-1",
      createdAt: new Date().toISOString(),
      database: store.handle.dialect,
      valise: v.valise,
      schema: v.schema.latest,
      logKey: existsSync(join(dataDir, LOG_KEY_FILE)) ? "file" : "VALISE_LOG_KEY",
      files,
      logs,
    };
    writeFileSync(join(out, "backup.json"), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  } finally {
    await store.close();
  }
  const pgDump =
    manifest.database === "postgres"
      ? `pg_dump --format=custom --file ${join(out, "valise.pgdump")} "$VALISE_DATABASE_URL"`
      : null;
  if (values.json) printJson({ out, ...manifest, ms: Date.now() - started, ...(pgDump ? { pgDump } : {}) });
  else {
    console.log(`backup written to ${out} in ${Date.now() - started} ms: ${manifest.files.join(", ")}`);
    console.log(
      `  directory log: ${manifest.logs.directory.size} entries; audit log: ${manifest.logs.audit.size} entries`,
    );
    if (manifest.logKey === "VALISE_LOG_KEY")
      console.log("  no log-key file: the signing key comes from VALISE_LOG_KEY; keep that secret with the backup");
    if (pgDump) console.log(`  PostgreSQL: now copy the database with\n    ${pgDump}`);
  }
  return 0;
}

async function restore(values: { from?: string; data?: string; json?: boolean }): Promise<number> {
  const from = resolve(str(values.from, "--from DIR", BACKUP_USAGE));
  const dataDir = resolve(str(values.data, "--data DIR", BACKUP_USAGE));
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(from, "backup.json"), "utf8")) as Manifest;
  } catch (e) {
    throw new UsageError(`${from} is not a valise backup (backup.json: ${e instanceof Error ? e.message : String(e)})`);
  }
  if (manifest.format !== "valise-backup-1")
    throw new UsageError(`${from}: unknown backup format ${JSON.stringify(manifest.format)}`);
  emptyOrAbsent(dataDir, "--data");
  const databaseUrl = process.env.VALISE_DATABASE_URL;
  if ((manifest.database === "postgres") !== Boolean(databaseUrl))
    throw new UsageError(
      manifest.database === "postgres"
        ? "this is a PostgreSQL backup: set VALISE_DATABASE_URL to the (empty) database to restore into"
        : "this is a SQLite backup: unset VALISE_DATABASE_URL",
    );
  const started = Date.now();
  process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  if (manifest.database === "sqlite")
    cpSync(join(from, "valise.sqlite"), join(dataDir, "valise.sqlite"), { errorOnExist: true });
  copyDataFiles(from, dataDir);
  const pgRestore =
    manifest.database === "postgres"
      ? `pg_restore --no-owner --dbname "$VALISE_DATABASE_URL" ${join(from, "valise.pgdump")}`
      : null;
  let logs: Manifest["logs"] | null = null;
  if (manifest.database === "sqlite") {
    // Opening runs the migrations (a backup from an older release is brought up to date) and reads the logs.
    const store = await openStore({ dataDir });
    try {
      logs = { directory: await logState(store.directory.log), audit: await logState(store.audit) };
    } finally {
      await store.close();
    }
  }
  const r = { data: dataDir, from, backupCreatedAt: manifest.createdAt, logs, ms: Date.now() - started };
  if (values.json) printJson({ ...r, ...(pgRestore ? { pgRestore } : {}) });
  else {
    console.log(`restored ${from} (taken ${manifest.createdAt}) into ${dataDir} in ${r.ms} ms`);
    if (logs) console.log(`  directory log: ${logs.directory.size} entries; audit log: ${logs.audit.size} entries`);
    if (pgRestore) console.log(`  PostgreSQL: now restore the database (empty) with\n    ${pgRestore}`);
    console.log(
      "  only restore the latest backup: witnesses and clients that saw a later checkpoint refuse an older log",
    );
  }
  return 0;
}

/** `valise admin backup …` / `valise admin restore …`. */
export async function backupRestore(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { out: { type: "string" }, from: { type: "string" }, data: { type: "string" }, json: { type: "boolean" } },
    BACKUP_USAGE,
  );
  if (values.help) {
    console.log(BACKUP_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${BACKUP_USAGE}`);
  return cmd === "backup" ? backup(values) : restore(values);
}
