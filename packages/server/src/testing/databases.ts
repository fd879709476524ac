/** Test support (exported as @valise/server/testing/*): fresh databases and in-process servers for tests and benches. */
/**
 * Runs storage-backed tests against every configured database: SQLite always, PostgreSQL when
 * VALISE_TEST_DATABASE_URL is set (CI sets it; on CI a missing URL is a failure, not a skip).
 * Each call gets a fresh, empty database (a temp dir for SQLite, a new database for PostgreSQL).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";

export interface TestDb {
  kind: "sqlite" | "postgres";
  dataDir: string;
  databaseUrl: string | undefined;
  dispose(): Promise<void>;
}

export const PG_URL = process.env.VALISE_TEST_DATABASE_URL;
if (!PG_URL && process.env.CI === "true")
  throw new Error("CI must set VALISE_TEST_DATABASE_URL so storage tests run on PostgreSQL");

export const DATABASE_KINDS: ("sqlite" | "postgres")[] = PG_URL ? ["sqlite", "postgres"] : ["sqlite"];

export async function freshDb(kind: "sqlite" | "postgres"): Promise<TestDb> {
  const dataDir = mkdtempSync(join(tmpdir(), "valise-test-"));
  if (kind === "sqlite") {
    return {
      kind,
      dataDir,
      databaseUrl: undefined,
      dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `valise_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_URL!);
  url.pathname = `/${name}`;
  return {
    kind,
    dataDir,
    databaseUrl: url.toString(),
    dispose: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
