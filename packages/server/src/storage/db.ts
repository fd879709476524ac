/**
 * Opens the database: SQLite in the data directory by default (WAL, synchronous=FULL so an acknowledged write
 * survives power loss), PostgreSQL when a URL is given. Runs migrations. Node-only (server package).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import pg from "pg";
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from "kysely";
import type { Database } from "./schema.js";
import { type Dialect, migrationProvider } from "./migrations.js";

export interface DbHandle {
  db: Kysely<Database>;
  dialect: Dialect;
  /** Files that hold data (for the plaintext scan test and backups). */
  files: string[];
  /** The raw SQLite connection (SQLite only): the append hot path runs prepared statements on it synchronously. */
  sqlite?: SQLite.Database;
  close(): Promise<void>;
}

export interface DbOptions {
  dataDir: string;
  databaseUrl?: string | undefined;
}

// int8 (bigint) and numeric come back from pg as strings; our 64-bit columns hold sequence numbers, epochs and
// millisecond times, all far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openDatabase(opts: DbOptions): Promise<DbHandle> {
  let handle: DbHandle;
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 10 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    handle = { db, dialect: "postgres", files: [], close: () => db.destroy() };
  } else {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = join(opts.dataDir, "valise.sqlite");
    const sqlite = new SQLite(file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    handle = {
      db,
      dialect: "sqlite",
      files: [file, `${file}-wal`, `${file}-shm`],
      sqlite,
      close: () => db.destroy(),
    };
  }
  const migrator = new Migrator({ db: handle.db, provider: migrationProvider(handle.dialect) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await handle.close();
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "?";
    throw new Error(
      `database migration ${failed} failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`,
    );
  }
  return handle;
}
