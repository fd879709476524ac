/**
 * Opens the database: SQLite in the data directory by default (WAL, synchronous=FULL so an acknowledged write
 * survives power loss), PostgreSQL when a URL is given. Runs migrations. Node-only (server package).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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
  /** PostgreSQL pool occupancy (metrics). */
  poolStats?: () => { total: number; idle: number; waiting: number };
  /** Set by the app to time every query the query builder runs (metrics); seconds and outcome. */
  onQuery?: ((seconds: number, ok: boolean) => void) | undefined;
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
    const timing: { onQuery?: ((s: number, ok: boolean) => void) | undefined } = {};
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool }),
      log: (e) => timing.onQuery?.(e.queryDurationMillis / 1000, e.level === "query"),
    });
    const close = async () => {
      await db.destroy();
      if (clients.size > 0)
        await new Promise<void>((done) => {
          drained = done;
          setTimeout(done, 5000).unref();
        });
    };
    handle = {
      db,
      dialect: "postgres",
      files: [],
      close,
      url: opts.databaseUrl,
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      set onQuery(f) {
        timing.onQuery = f;
      },
      get onQuery() {
        return timing.onQuery;
      },
    };
  } else {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = join(opts.dataDir, "valise.sqlite");
    const sqlite = new SQLite(file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    const timing: { onQuery?: ((s: number, ok: boolean) => void) | undefined } = {};
    const db = new Kysely<Database>({
      dialect: new ImmediateSqliteDialect({ database: sqlite }),
      log: (e) => timing.onQuery?.(e.queryDurationMillis / 1000, e.level === "query"),
    });
    handle = {
      set onQuery(f) {
        timing.onQuery = f;
      },
      get onQuery() {
        return timing.onQuery;
      },
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

export interface MigrationDryRun {
  dialect: Dialect;
  /** Migrations already applied to the database, in order. */
  applied: string[];
  /** Migrations that `valise serve` would apply at its next start, in the order they ran here. */
  pending: string[];
  ok: boolean;
  /** The pending migration that failed, and why. */
  failed?: string;
  error?: string;
  /** How the database was left untouched: "rolled back" (PostgreSQL) or "ran on a copy" (SQLite). */
  method: string;
}

/**
 * Runs the pending migrations without changing the database: on PostgreSQL inside one transaction that is rolled
 * back (PostgreSQL's DDL is transactional), on SQLite on an online copy (the backup API) in a temporary directory,
 * deleted after. Never creates a database: a SQLite data directory without one has every migration pending.
 */
export async function dryRunMigrations(opts: DbOptions): Promise<MigrationDryRun> {
  const ROLLBACK = new Error("dry run: roll back");
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 1, connectionTimeoutMillis: 5000 });
    pool.on("error", () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      const out: MigrationDryRun = { dialect: "postgres", applied: [], pending: [], ok: true, method: "rolled back" };
      await db
        .transaction()
        .execute(async (trx) => {
          await runPending(trx, "postgres", out);
          throw ROLLBACK;
        })
        .catch((e: unknown) => {
          if (e !== ROLLBACK) throw e;
        });
      return out;
    } finally {
      await db.destroy();
    }
  }
  const file = join(opts.dataDir, "valise.sqlite");
  const dir = mkdtempSync(join(tmpdir(), "valise-migrate-dry-run-"));
  try {
    const copy = join(dir, "valise.sqlite");
    if (existsSync(file)) {
      const src = new SQLite(file, { readonly: true, fileMustExist: true });
      try {
        await src.backup(copy);
      } finally {
        src.close();
      }
    }
    const sqlite = new SQLite(copy);
    sqlite.pragma("foreign_keys = ON");
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    try {
      const out: MigrationDryRun = { dialect: "sqlite", applied: [], pending: [], ok: true, method: "ran on a copy" };
      await runPending(db, "sqlite", out);
      return out;
    } finally {
      await db.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Applies what is pending on `db` one by one (each in order, as the Migrator would), recording into `out`. */
async function runPending(db: Kysely<Database>, dialect: Dialect, out: MigrationDryRun): Promise<void> {
  const all = await migrationProvider(dialect).getMigrations();
  let done = new Set<string>();
  try {
    const rows = await (db as unknown as Kysely<{ kysely_migration: { name: string } }>)
      .selectFrom("kysely_migration")
      .select("name")
      .execute();
    done = new Set(rows.map((r) => r.name));
  } catch {
    // no migration table yet: a new database, everything is pending
  }
  const names = Object.keys(all).sort();
  out.applied = names.filter((n) => done.has(n));
  out.pending = names.filter((n) => !done.has(n));
  for (const name of out.pending) {
    try {
      await all[name]!.up(db);
    } catch (e) {
      out.ok = false;
      out.failed = name;
      out.error = e instanceof Error ? e.message : String(e);
      return;
    }
  }
}
