/**
 * `valise admin backup` and `valise admin restore`: an online, consistent copy of a server's state — the database
 * (SQLite: better-sqlite3's online backup API; PostgreSQL: pg_dump, which reads one snapshot — both consistent while
 * the server keeps writing), the data directory's log key and blob files, and the last cosigned checkpoints — into
 * one archive file (ustar, tar.ts) or a directory, and its restore into an empty data directory (and database).
 */
import { execFile } from "node:child_process";
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CosignedCheckpoints, LOG_KEY_FILE, openStore } from "@valise/server";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { extractTar, TarWriter } from "./tar.js";
import { versionInfo } from "./version.js";

export const BACKUP_USAGE = `usage: valise admin backup --out FILE [--data DIR] [--json]
       valise admin backup --out DIR/ [--data DIR] [--json]
       valise admin restore FILE --data DIR [--json]
       valise admin restore --from DIR --data DIR [--json]

backup   an online copy while the server runs. --out FILE writes one archive (a POSIX tar: tar -tvf FILE lists
         it), mode 0600, never over an existing file; --out DIR/ (a trailing slash, or an existing empty
         directory) writes the same files into DIR, mode 0700. What is copied:
         the database: SQLite: valise.sqlite, a consistent snapshot taken with SQLite's online backup API;
           PostgreSQL (VALISE_DATABASE_URL): valise.pgdump, written by pg_dump --format=custom, which reads one
           consistent snapshot (pg_dump must be installed, of the server's major version or newer);
         the data directory's log-key (the directory/audit log signing key; absent when VALISE_LOG_KEY or
           logKeyFile is used: keep that secret yourself), blobs/ (document and attachment ciphertext) and every
           other file there;
         backup.json: release, schema, time, the size and root of both logs, and the last witness-cosigned
           checkpoint of each log at the time of the copy.
         The database is copied first, then the files: a blob deleted in between is missing (answers 404),
         one uploaded in between is an unreferenced extra file.
restore  into an empty (or new) data directory DIR from a backup FILE (or DIR): refuses a non-empty one. SQLite:
         the database, log key and blobs are put in place. PostgreSQL: VALISE_DATABASE_URL must name an empty
         database (a non-empty one is refused); pg_restore loads the dump into it. The database is then opened
         (migrations of this release) and the log sizes printed; start valise serve --data DIR.
         The log signing key is pinned in the database: a backup restored with another key is refused at start-up.
A restored backup is the state at the time of the copy. valise serve compares its logs with what each witness
last cosigned and refuses to start if a witness has cosigned a larger (or another) tree than the restored log:
the message says which log and what to do (README "Disaster recovery").`;

const DB_FILES = new Set(["valise.sqlite", "valise.sqlite-wal", "valise.sqlite-shm"]);
const BACKUP_FILES = new Set(["backup.json", "valise.pgdump", "valise.sqlite"]);

interface LogState {
  size: number;
  checkpointSize: number | null;
  checkpointRoot: string | null;
}

/** The last checkpoint witnesses cosigned (as the server published it), or null if none / no witnesses. */
interface Cosigned {
  size: number;
  note: string;
  createdAt: string;
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
  cosigned?: { directory: Cosigned | null; audit: Cosigned | null };
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

/** The data directory's files to back up (not the database's own files), as relative paths; directories end in /. */
function dataFiles(from: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(from, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    if (!rel && (DB_FILES.has(name) || BACKUP_FILES.has(name))) continue;
    const st = statSync(join(from, r));
    if (st.isDirectory()) out.push(`${r}/`, ...dataFiles(from, r));
    else if (st.isFile()) out.push(r);
  }
  return out;
}

/** Copy every file of `from` except the database files into `to`, keeping modes; the top-level names copied. */
function copyDataFiles(from: string, to: string): string[] {
  const copied: string[] = [];
  for (const name of readdirSync(from)) {
    if (DB_FILES.has(name) || BACKUP_FILES.has(name)) continue;
    cpSync(join(from, name), join(to, name), { recursive: true, preserveTimestamps: true, errorOnExist: true });
    copied.push(statSync(join(from, name)).isDirectory() ? `${name}/` : name);
  }
  return copied;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return done(stdout);
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT")
        return fail(
          new UsageError(`${cmd} not found: install the PostgreSQL client tools (the server's major version or newer)`),
        );
      fail(new Error(`${cmd} failed: ${stderr.trim() || e.message}`));
    });
  });
}

async function cosignedOf(store: Awaited<ReturnType<typeof openStore>>, log: string): Promise<Cosigned | null> {
  const c = await new CosignedCheckpoints(store.handle.db, log).latest();
  return c ? { size: c.size, note: c.note, createdAt: new Date(c.createdAt).toISOString() } : null;
}

async function backup(values: { out?: string; data?: string; json?: boolean }): Promise<number> {
  const outArg = str(values.out, "--out FILE", BACKUP_USAGE);
  const out = resolve(outArg);
  const toDir = outArg.endsWith("/") || (existsSync(out) && statSync(out).isDirectory());
  const dataDir = resolve(values.data ?? "./valise-data");
  if (!existsSync(dataDir)) throw new UsageError(`no data directory ${dataDir}`);
  if (toDir) emptyOrAbsent(out, "--out");
  else if (existsSync(out)) throw new UsageError(`--out ${out} exists: refusing to overwrite it`);
  process.umask(0o077);
  const databaseUrl = process.env.VALISE_DATABASE_URL;
  // The database snapshot goes to `stage`: the output directory, or a temporary one beside the archive.
  let stage: string;
  if (toDir) {
    mkdirSync(out, { recursive: true, mode: 0o700 });
    stage = out;
  } else stage = mkdtempSync(join(dirname(out), `.${basename(out)}.partial-`));
  const store = await openStore({ dataDir, databaseUrl, poolSize: 2 });
  let manifest: Manifest;
  const started = Date.now();
  try {
    const v = await versionInfo();
    // Log sizes before the copy: the copy holds at least these entries.
    const logs = { directory: await logState(store.directory.log), audit: await logState(store.audit) };
    const cosigned = { directory: await cosignedOf(store, "directory"), audit: await cosignedOf(store, "audit") };
    let dbFile: string;
    if (store.handle.sqlite) {
      dbFile = "valise.sqlite";
      await store.handle.sqlite.backup(join(stage, dbFile));
    } else {
      dbFile = "valise.pgdump";
      await run("pg_dump", ["--format=custom", "--no-owner", "--file", join(stage, dbFile), databaseUrl!]);
    }
    const files = [dbFile, ...(toDir ? copyDataFiles(dataDir, out) : dataFiles(dataDir))];
    manifest = {
      format: "valise-backup-1",
      createdAt: new Date().toISOString(),
      database: store.handle.dialect,
      valise: v.valise,
      schema: v.schema.latest,
      logKey: existsSync(join(dataDir, LOG_KEY_FILE)) ? "file" : "VALISE_LOG_KEY",
      files,
      logs,
      cosigned,
    };
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    if (toDir) writeFileSync(join(out, "backup.json"), manifestText, { mode: 0o600 });
    else {
      // One archive: the manifest first (tar -xOf FILE backup.json reads it fast), the database, the files.
      const tmp = join(stage, "archive.tar");
      const fd = openSync(tmp, "wx", 0o600);
      try {
        const w = new TarWriter(fd);
        w.bytes("backup.json", Buffer.from(manifestText));
        w.file(dbFile, join(stage, dbFile));
        for (const f of files.slice(1))
          if (f.endsWith("/")) w.directory(f);
          else w.file(f, join(dataDir, f));
        w.finish();
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, out);
    }
  } catch (e) {
    if (toDir) rmSync(join(out, "backup.json"), { force: true });
    throw e;
  } finally {
    await store.close();
    if (!toDir) rmSync(stage, { recursive: true, force: true });
  }
  const ms = Date.now() - started;
  const bytes = toDir ? undefined : statSync(out).size;
  if (values.json) printJson({ out, ...(bytes !== undefined ? { bytes } : {}), ...manifest, ms });
  else {
    console.log(`backup written to ${out} in ${ms} ms${bytes !== undefined ? ` (${bytes} bytes)` : ""}`);
    console.log(
      `  directory log: ${manifest.logs.directory.size} entries; audit log: ${manifest.logs.audit.size} entries`,
    );
    if (manifest.logKey === "VALISE_LOG_KEY")
      console.log("  no log-key file: the signing key comes from VALISE_LOG_KEY; keep that secret with the backup");
  }
  return 0;
}

async function restore(values: { from?: string; data?: string; json?: boolean }, source?: string): Promise<number> {
  if (source !== undefined && values.from !== undefined)
    throw new UsageError(`give the backup once: FILE or --from DIR\n\n${BACKUP_USAGE}`);
  const src = resolve(source ?? str(values.from, "FILE (or --from DIR)", BACKUP_USAGE));
  const dataDir = resolve(str(values.data, "--data DIR", BACKUP_USAGE));
  if (!existsSync(src)) throw new UsageError(`no backup ${src}`);
  emptyOrAbsent(dataDir, "--data");
  const started = Date.now();
  process.umask(0o077);
  mkdirSync(dirname(dataDir), { recursive: true, mode: 0o700 });
  // An archive is unpacked beside the data directory first (same file system), then restored like a directory.
  const unpacked = statSync(src).isDirectory() ? null : mkdtempSync(join(dirname(dataDir), ".valise-restore-"));
  try {
    if (unpacked)
      try {
        extractTar(src, unpacked);
      } catch (e) {
        throw new UsageError(`${src} is not a valise backup archive: ${e instanceof Error ? e.message : String(e)}`);
      }
    return await restoreFrom(unpacked ?? src, src, dataDir, values.json === true, started);
  } finally {
    if (unpacked) rmSync(unpacked, { recursive: true, force: true });
  }
}

async function restoreFrom(from: string, src: string, dataDir: string, json: boolean, started: number) {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(from, "backup.json"), "utf8")) as Manifest;
  } catch (e) {
    throw new UsageError(`${src} is not a valise backup (backup.json: ${e instanceof Error ? e.message : String(e)})`);
  }
  if (manifest.format !== "valise-backup-1")
    throw new UsageError(`${src}: unknown backup format ${JSON.stringify(manifest.format)}`);
  const databaseUrl = process.env.VALISE_DATABASE_URL;
  if ((manifest.database === "postgres") !== Boolean(databaseUrl))
    throw new UsageError(
      manifest.database === "postgres"
        ? "this is a PostgreSQL backup: set VALISE_DATABASE_URL to the (empty) database to restore into"
        : "this is a SQLite backup: unset VALISE_DATABASE_URL",
    );
  if (manifest.database === "postgres") {
    if (!existsSync(join(from, "valise.pgdump")))
      throw new UsageError(
        `${src} has no valise.pgdump (a backup from an older release: run pg_restore on the dump you took yourself)`,
      );
    const tables = Number(
      (
        await run("psql", [
          "-XAtq",
          "-c",
          "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
          databaseUrl!,
        ])
      ).trim(),
    );
    if (tables > 0)
      throw new UsageError(
        `the database VALISE_DATABASE_URL names has ${tables} tables: restore only into an empty database ` +
          "(createdb a new one, or drop and create this one after making sure nothing in it is needed)",
      );
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  if (manifest.database === "sqlite")
    cpSync(join(from, "valise.sqlite"), join(dataDir, "valise.sqlite"), { errorOnExist: true });
  else
    await run("pg_restore", [
      "--no-owner",
      "--exit-on-error",
      "--single-transaction",
      "--dbname",
      databaseUrl!,
      join(from, "valise.pgdump"),
    ]);
  copyDataFiles(from, dataDir);
  // Opening runs the migrations (a backup from an older release is brought up to date) and reads the logs.
  const store = await openStore({ dataDir, databaseUrl, poolSize: 2 });
  let logs: Manifest["logs"];
  try {
    logs = { directory: await logState(store.directory.log), audit: await logState(store.audit) };
  } finally {
    await store.close();
  }
  const r = {
    data: dataDir,
    from: src,
    database: manifest.database,
    backupCreatedAt: manifest.createdAt,
    logs,
    cosigned: manifest.cosigned ?? null,
    ms: Date.now() - started,
  };
  if (json) printJson(r);
  else {
    console.log(`restored ${src} (taken ${manifest.createdAt}) into ${dataDir} in ${r.ms} ms`);
    console.log(`  directory log: ${logs.directory.size} entries; audit log: ${logs.audit.size} entries`);
    console.log(
      "  valise serve checks these logs against the witnesses at start-up and refuses to run a log they have " +
        "seen grow past it (README: Disaster recovery)",
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
  const extra = cmd === "restore" ? positionals.slice(1) : positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}\n\n${BACKUP_USAGE}`);
  return cmd === "backup" ? backup(values) : restore(values, positionals[0]);
}
