/**
 * Storage logic written once, run two ways (issue 17 item 4). A hot path such as the message append is a generator
 * that yields the SQL statements it needs (`?` placeholders) and receives their rows; it never touches a driver.
 * - `runSync` runs it on better-sqlite3: statements prepared once per connection, executed synchronously, so a
 *   whole batch transaction runs without yielding to the event loop (short and never stretched across requests).
 * - `runAsync` runs it on any Kysely executor (a PostgreSQL or SQLite transaction), placeholders rewritten for the
 *   dialect.
 * The rules (idempotency, epoch check, membership, inbox) exist once; the two runners only move rows.
 */
import { CompiledQuery, PostgresAdapter, type Kysely } from "kysely";
import type SQLite from "better-sqlite3";
import type { Database } from "./schema.js";

/**
 * One statement asked for by a step: `one` returns the first row (or undefined), `all` every row, `run` nothing;
 * `insert` adds many rows to a table (one prepared single-row statement per row on better-sqlite3, where a statement
 * costs no round trip; multi-row INSERTs of at most `INSERT_CHUNK` parameters through Kysely).
 */
export type Query =
  | { sql: string; args: readonly unknown[]; rows: "one" | "all" | "run" }
  | { rows: "insert"; table: string; columns: readonly string[]; values: readonly (readonly unknown[])[] };

/** Bound parameters per multi-row INSERT (below every driver's limit: PostgreSQL 65,535, SQLite 32,766). */
export const INSERT_CHUNK = 4000;

/** A storage step: yields queries, is resumed with each query's result, returns T. */
export type Steps<T> = Generator<Query, T, unknown>;

/** The first row of `sql` (or undefined). Use with `yield*`. */
export function* one<R>(sql: string, ...args: unknown[]): Steps<R | undefined> {
  return (yield { sql, args, rows: "one" }) as R | undefined;
}

/** Every row of `sql`. Use with `yield*`. */
export function* all<R>(sql: string, ...args: unknown[]): Steps<R[]> {
  return (yield { sql, args, rows: "all" }) as R[];
}

/** Runs `sql` for its effect. Use with `yield*`. */
export function* run(sql: string, ...args: unknown[]): Steps<void> {
  yield { sql, args, rows: "run" };
}

/** Inserts `values` (rows in the order of `columns`) into `table`. Use with `yield*`. */
export function* insert(
  table: string,
  columns: readonly string[],
  values: readonly (readonly unknown[])[],
): Steps<void> {
  if (values.length > 0) yield { rows: "insert", table, columns, values };
}

const quoted = (columns: readonly string[]) => columns.map((c) => `"${c}"`).join(", ");

/** Byte arrays as Buffers (both drivers bind Buffers as BLOB / bytea). */
function bind(args: readonly unknown[]): unknown[] {
  return args.map((a) =>
    a instanceof Uint8Array && !Buffer.isBuffer(a) ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : a,
  );
}

/** Runs steps synchronously on a better-sqlite3 connection (call it inside a better-sqlite3 transaction). */
export class SyncRunner {
  private readonly statements = new Map<string, SQLite.Statement>();
  constructor(private readonly sqlite: SQLite.Database) {}

  run<T>(steps: Steps<T>): T {
    let next = steps.next();
    while (!next.done) {
      const q = next.value;
      if (q.rows === "insert") {
        const st = this.prepared(
          `INSERT INTO ${q.table} (${quoted(q.columns)}) VALUES (${q.columns.map(() => "?").join(", ")})`,
        );
        for (const row of q.values) st.run(...bind(row));
        next = steps.next(undefined);
        continue;
      }
      const st = this.prepared(q.sql);
      const args = bind(q.args);
      const result = q.rows === "one" ? st.get(...args) : q.rows === "all" ? st.all(...args) : void st.run(...args);
      next = steps.next(result);
    }
    return next.value;
  }

  private prepared(sql: string): SQLite.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.sqlite.prepare(sql)));
    return st;
  }

  /** True when no transaction is open on the connection (a Kysely one would make ours nest inside it). */
  idle(): boolean {
    return !this.sqlite.inTransaction;
  }
}

/** The dialect a Kysely instance (or transaction) speaks. */
export function dialectOf(db: Kysely<Database>): "sqlite" | "postgres" {
  return db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
}

/** Runs steps on a Kysely executor (a transaction or the pool) of the given dialect. */
export async function runAsync<T>(db: Kysely<Database>, dialect: "sqlite" | "postgres", steps: Steps<T>): Promise<T> {
  let next = steps.next();
  while (!next.done) {
    const q = next.value;
    if (q.rows === "insert") {
      const per = Math.max(1, Math.floor(INSERT_CHUNK / q.columns.length));
      for (let i = 0; i < q.values.length; i += per) {
        const chunk = q.values.slice(i, i + per);
        const row = `(${q.columns.map(() => "?").join(", ")})`;
        const text = `INSERT INTO ${q.table} (${quoted(q.columns)}) VALUES ${chunk.map(() => row).join(", ")}`;
        await db.executeQuery(CompiledQuery.raw(placeholders(text, dialect), bind(chunk.flat())));
      }
      next = steps.next(undefined);
      continue;
    }
    const r = await db.executeQuery(CompiledQuery.raw(placeholders(q.sql, dialect), bind(q.args)));
    next = steps.next(q.rows === "one" ? r.rows[0] : q.rows === "all" ? r.rows : undefined);
  }
  return next.value;
}

const rewritten = new Map<string, string>();
/** `?` placeholders as PostgreSQL's `$1, $2, …` (the statements carry no `?` inside literals). */
function placeholders(sql: string, dialect: "sqlite" | "postgres"): string {
  if (dialect === "sqlite") return sql;
  let s = rewritten.get(sql);
  if (s === undefined) {
    let n = 0;
    s = sql.replace(/\?/g, () => `$${++n}`);
    if (rewritten.size < 1000) rewritten.set(sql, s);
  }
  return s;
}
