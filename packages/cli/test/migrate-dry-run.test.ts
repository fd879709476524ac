/**
 * Issue 19 part 3, migration dry run: `valise admin migrate --dry-run` lists the pending migrations and runs them
 * without changing the database (PostgreSQL: a transaction rolled back; SQLite: on a copy), and names the one that
 * fails. A database with its last migration taken back (record and tables dropped) has it pending: the dry run
 * succeeds and the tables are still absent after; with the record dropped but a table left, the migration fails and
 * the dry run names it. SQLite and PostgreSQL; the CLI as a separate process once.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { dryRunMigrations, openStore } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const LAST = "022_retention";

for (const kind of DATABASE_KINDS)
  describe(`migration dry run (${kind})`, { timeout: 120_000 }, () => {
    const dbs: TestDb[] = [];
    after(async () => {
      for (const d of dbs) await d.dispose();
    });

    async function tableExists(db: TestDb, name: string): Promise<boolean> {
      const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      try {
        const q =
          kind === "sqlite"
            ? sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = ${name}`
            : sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_name = ${name}`;
        return Number((await q.execute(store.handle.db)).rows[0]!.n) > 0;
      } finally {
        await store.close();
      }
    }

    /** Takes LAST back: its record, and (unless `keep`) its tables. */
    async function unapply(db: TestDb, keep: boolean) {
      const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      await sql`delete from kysely_migration where name = ${LAST}`.execute(store.handle.db);
      if (!keep)
        for (const t of ["retention_rules", "retention_archive_marks", "log_prune"])
          await sql.raw(`drop table ${t}`).execute(store.handle.db);
      for (const i of ["messages_created", "cables_created", "document_versions_created"])
        await sql.raw(`drop index ${i}`).execute(store.handle.db);
      await store.close();
    }

    test("pending migrations run and are undone; a failing one is named; the database is unchanged", async () => {
      const db = await freshDb(kind);
      dbs.push(db);
      await (await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl })).close();
      const none = await dryRunMigrations({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      assert.deepEqual([none.ok, none.pending], [true, []]);
      assert.ok(none.applied.includes(LAST));

      // Direct access, bypassing openStore (which would migrate), for the rest.
      await unapply(db, false);
      const ok = await dryRunMigrations({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      assert.deepEqual([ok.ok, ok.pending, ok.failed], [true, [LAST], undefined]);
      // The CLI, as an operator runs it before an upgrade.
      const env: NodeJS.ProcessEnv = { ...process.env };
      if (db.databaseUrl) env.VALISE_DATABASE_URL = db.databaseUrl;
      else delete env.VALISE_DATABASE_URL;
      const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          [CLI, "admin", "--data", db.dataDir, "migrate", "--dry-run", "--json"],
          { env, timeout: 60_000 },
          (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
        ),
      );
      assert.equal(out.code, 0, out.stdout);
      assert.deepEqual((JSON.parse(out.stdout) as { pending: string[] }).pending, [LAST]);
      // Dry runs left no table behind (openStore here re-applies LAST, so check through a raw look first).
      const look = await dryRunMigrations({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      assert.deepEqual(look.pending, [LAST], "still pending after the dry runs");

      // A table of LAST left in place: its CREATE TABLE fails; the dry run says which migration and why.
      const db2 = await freshDb(kind);
      dbs.push(db2);
      await (await openStore({ dataDir: db2.dataDir, databaseUrl: db2.databaseUrl })).close();
      await unapply(db2, true);
      const bad = await dryRunMigrations({ dataDir: db2.dataDir, databaseUrl: db2.databaseUrl });
      assert.deepEqual([bad.ok, bad.failed], [false, LAST]);
      assert.match(bad.error ?? "", /retention_rules/);
      const again = await dryRunMigrations({ dataDir: db2.dataDir, databaseUrl: db2.databaseUrl });
      assert.deepEqual(again.pending, [LAST], "the failed dry run changed nothing");
      // And the real start-up, for comparison, applies LAST on the first database.
      assert.equal(await tableExists(db, "retention_rules"), true);
    });
  });
