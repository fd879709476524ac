/**
 * Token buckets shared by every node on one PostgreSQL (issue 18, part 4): the same refill rule as the in-memory
 * `RateLimiter`, in `rate_buckets` (migration 020), refilled and taken in ONE statement so two nodes taking from the
 * same bucket at once cannot both spend its last token (the row lock of the upsert serializes them). Behind a
 * round-robin proxy an address gets the configured rate in total, not the rate times the number of nodes.
 *
 * Keys are namespaced by limiter (`login:203.0.113.7`). Rows of buckets that have been full for an hour are removed
 * now and then (a full bucket and no row behave the same), so spraying keys grows the table only for an hour.
 */
import { sql, type Kysely } from "kysely";
import type { Database } from "./schema.js";
import type { Limiter } from "../http/rate-limit.js";

const SWEEP_EVERY = 1000;
const IDLE_MS = 3_600_000;

export class SharedRateLimiter implements Limiter {
  private calls = 0;
  constructor(
    private readonly db: Kysely<Database>,
    private readonly name: string,
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {}

  /** The bucket's tokens now, refilled from the stored ones (SQL expression over the existing row). */
  private refilled(t: number) {
    return sql<number>`LEAST(${this.burst}::double precision, rate_buckets.tokens + GREATEST(0, ${t}::bigint - rate_buckets.at) / 60000.0 * ${this.perMinute}::double precision)`;
  }

  async take(key: string): Promise<boolean> {
    const t = this.now();
    this.sweep(t);
    // New bucket: full, minus this token. Existing: refilled, minus this token, only where one is left; otherwise
    // the row is untouched (its `at` stays, so the refill owed since then is not lost) and nothing is returned.
    const r = await sql<{ tokens: number }>`
      INSERT INTO rate_buckets (key, tokens, at) VALUES (${`${this.name}:${key}`}, ${this.burst - 1}::double precision, ${t})
      ON CONFLICT (key) DO UPDATE SET tokens = ${this.refilled(t)} - 1, at = ${t}
      WHERE ${this.refilled(t)} >= 1
      RETURNING tokens`.execute(this.db);
    return r.rows.length === 1 && this.burst >= 1;
  }

  async exhausted(key: string): Promise<boolean> {
    const t = this.now();
    const r = await sql<{ tokens: number }>`
      SELECT ${this.refilled(t)} AS tokens FROM rate_buckets WHERE key = ${`${this.name}:${key}`}`.execute(this.db);
    const row = r.rows[0];
    return row ? Number(row.tokens) < 1 : this.burst < 1;
  }

  private sweep(t: number): void {
    if (++this.calls % SWEEP_EVERY !== 0) return;
    void sql`DELETE FROM rate_buckets WHERE at < ${t - IDLE_MS}`.execute(this.db).catch(() => undefined);
  }
}
