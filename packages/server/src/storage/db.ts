/**
 * Opens the database: SQLite in the data directory by default (WAL, synchronous=FULL so an acknowledged write
 * survives power loss), PostgreSQL when a URL is given. Runs migrations. Node-only (server package).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import pg from "pg";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, SqliteDriver, CompiledQuery } from "kysely";
import type { DatabaseConnection, Driver } from "kysely";
import type { Database } from "./schema.js";
import { type Dialect, migrationProvider } from "./migrations.js";

export interface DbHandle {
  db: Kysely<Database>;
  dialect: Dialect;
  /** Files that hold data (for the plaintext scan test and backups). */
  files: string[];
  /** The raw SQLite connection (SQLite only): the append hot path runs prepared statements on it synchronously. */
  sqlite?: SQLite.Database;
  /** The PostgreSQL URL (PostgreSQL only): leader election holds its lock on a connection of its own. */
  url?: string;
  close(): Promise<void>;
}

export interface DbOptions {
  dataDir: string;
  databaseUrl?: string | undefined;
  /** PostgreSQL connection pool size (default 10). */
  poolSize?: number | undefined;
}

// int8 (bigint) and numeric come back from pg as strings; our 64-bit columns hold sequence numbers, epochs and
// millisecond times, all far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openDatabase(opts: DbOptions): Promise<DbHandle> {
  let handle: DbHandle;
  if (opts.databaseUrl) {
    // A bounded wait for a connection: while the database is down a request fails (503) instead of hanging.
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
    });
    // An idle client's connection error (database restart, a terminated backend) is emitted on the pool, which has
    // already dropped that client; unhandled, it would crash the process. The next query opens a new connection.
    pool.on("error", () => {});
    // A checked-out client (a query or a transaction in flight) emits 'error' on itself, not on the pool: a
    // PostgreSQL restart under load ended the process with "Unhandled 'error' event … terminating connection due to
    // administrator command". The query in flight still rejects (its request answers 503 store_error) and the pool
    // discards the broken client when it is released; this listener only keeps the event from being fatal.
    pool.on("connect", (c) => {
      c.on("error", () => {});
    });
    // pool.end() resolves before its clients have disconnected; close() waits for them, so a closed handle holds no
    // connection (dropping the database right after, as tests do, must not hit a live one).
    const clients = new Set<pg.PoolClient>();
    let drained: (() => void) | undefined;
    pool.on("connect", (c) => void clients.add(c));
    pool.on("remove", (c) => {
      clients.delete(c);
      if (clients.size === 0) drained?.();
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const close = async () => {
      await db.destroy();
      if (clients.size > 0)
        await new Promise<void>((done) => {
          drained = done;
          setTimeout(done, 5000).unref();
        });
    };
    handle = { db, dialect: "postgres", files: [], close, url: opts.databaseUrl };
  } else {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = join(opts.dataDir, "valise.sqlite");
    const sqlite = new SQLite(file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
    handle = {
      db,
      dialect: "sqlite",
      files: [file, `${file}-wal`, `${file}-shm`],
      sqlite,
      close: () => db.destroy(),
    };
  }
  // Migrations are independent (each adds its own tables), and parallel work lands them out of number order (004
  // before 003): a database migrated in between must still take the late one.
  const migrator = new Migrator({
    db: handle.db,
    provider: migrationProvider(handle.dialect),
    allowUnorderedMigrations: true,
  });
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

/**
 * SQLite transactions that take the write lock when they begin (`BEGIN IMMEDIATE`), waiting up to busy_timeout for
 * it. With Kysely's plain `BEGIN` (deferred) a transaction that reads first and writes later fails at once with
 * "database is locked" (SQLITE_BUSY, no wait) when another process — `valise admin` next to a running server, or two
 * admin commands — wrote in between; every transaction here writes, so taking the lock up front costs nothing.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    return new (class extends SqliteDriver {
      override async beginTransaction(connection: DatabaseConnection): Promise<void> {
        await connection.executeQuery(CompiledQuery.raw("begin immediate"));
      }
    })(this.config);
  }
  constructor(private readonly config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
  }
}
