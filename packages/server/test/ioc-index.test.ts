/**
 * Allied indicators searched by index (issue 16 target: one year of audit log in < 60 s): the audit log's
 * `source_key` column (migration 024) on SQLite and PostgreSQL —
 *  - the migration backfills rows appended before it (and `valise admin migrate --dry-run` lists it, leaving the
 *    database untouched), new appends fill it;
 *  - the retroactive search is a range scan per network: IPv4 and IPv6 addresses and CIDR networks, boundaries,
 *    IPv4-mapped IPv6, the same answer as the leaf-by-leaf search while reading only the matching leaves;
 *  - the column is derived data: an intruder who edits a row's column to hide it from the index is found by the
 *    column check (a critical audit-index-mismatch alert naming the entry, and the ioc-match alert the edit hid);
 *    a column edited to point a benign row INTO a network matches nothing (the leaf decides).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import pg from "pg";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import type { AuditEvent } from "@valise/core";
import {
  openStore,
  importStixObjects,
  IndicatorSet,
  retroScan,
  retroScanLeaves,
  IocService,
  IOC_RULE,
  INDEX_RULE,
  type MatchIndicator,
} from "@valise/server";
import { migrationProvider } from "../src/storage/migrations.js";
import { dryRunMigrations } from "../src/storage/db.js";
import { MerkleLog } from "../src/storage/merkle-log.js";
import { auditItem, sourceKey } from "../src/storage/audit-log.js";
import type { NewAlert } from "../src/detect/alert-store.js";
import type { Database } from "../src/storage/schema.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const T = "2026-11-01T00:00:00.000Z";

function event(n: number, source: string, actor = `user${n % 3}`): AuditEvent {
  return {
    id: `e-${n.toString(16).padStart(20, "0")}`,
    time: new Date(Date.parse(T) + n * 60_000).toISOString(),
    actor,
    device: `d-${actor}-0001`,
    source,
    client: "valise-cli/0.1",
    action: "document.read",
    object: `doc-${n}`,
    target_device: null,
    label: "CONFIDENTIAL",
    unit: "HQ/UNIT-1",
    bytes: 100,
    canary: false,
    outcome: "ok",
  };
}

const indicator = (n: number, pattern: string) => ({
  type: "indicator",
  spec_version: "2.1",
  id: `indicator--00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
  created: T,
  modified: T,
  name: `ind ${n}`,
  pattern,
  pattern_type: "stix",
  valid_from: T,
});

function matchSet(objects: unknown[], fromIndex: number): IndicatorSet {
  const imp = importStixObjects(objects);
  assert.equal(imp.refused.length, 0, JSON.stringify(imp.refused));
  const inds: MatchIndicator[] = imp.indicators.map((i) => ({
    id: i.id,
    name: i.name,
    partner: "test",
    networks: i.networks,
    techniques: i.techniques,
    validFrom: i.validFrom,
    validUntil: i.validUntil,
    fromIndex,
  }));
  return new IndicatorSet(inds);
}

const found = (r: Awaited<ReturnType<typeof retroScan>>) =>
  [...r.groups.values()].flatMap((g) => g.indexes).sort((a, b) => a - b);

/** A Kysely on the test database, migrated only up to 023 (a server from before this change). */
async function oldDatabase(t: TestDb): Promise<Kysely<Database>> {
  const db =
    t.kind === "sqlite"
      ? new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(join(t.dataDir, "valise.sqlite")) }) })
      : new Kysely<Database>({
          dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: t.databaseUrl, max: 1 }) }),
        });
  const all = await migrationProvider(t.kind).getMigrations();
  const migrator = new Migrator({
    db,
    provider: {
      getMigrations: async () => Object.fromEntries(Object.entries(all).filter(([n]) => n < "024")),
    },
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(JSON.stringify(error));
  return db;
}

const SOURCES = [
  "203.0.113.45", // in 203.0.113.0/24
  "10.0.0.1",
  "2001:db8:aa::7", // in 2001:db8:aa::/48
  "::ffff:203.0.113.9", // IPv4-mapped: the IPv4 address, in the /24
  "local", // the admin CLI: no address
  "",
  "203.0.114.0", // just above the /24
  "2001:db8:ab::1", // just outside the /48
];

for (const kind of DATABASE_KINDS) {
  test(`migration 024 backfills source_key of rows appended before it; dry run lists it (${kind})`, async () => {
    const t = await freshDb(kind);
    try {
      const old = await oldDatabase(t);
      // The old server's append: the Merkle log with the four columns it had.
      const log = new MerkleLog(old, () => Date.parse(T), {
        name: "audit",
        extraColumns: ["time", "actor", "action", "object"],
      });
      const events = SOURCES.map((s, n) => event(n, s));
      await log.appendBatch(events.map(auditItem)); // appends fill only the columns the log was given
      await old.destroy();

      const dry = await dryRunMigrations({ dataDir: t.dataDir, databaseUrl: t.databaseUrl });
      assert.equal(dry.ok, true, dry.error);
      assert.equal(dry.pending[0], "024_audit_source_key");

      const store = await openStore({ dataDir: t.dataDir, databaseUrl: t.databaseUrl });
      try {
        const rows = await sql<{ idx: number | string; source_key: Uint8Array | null }>`
          select idx, source_key from audit_log_entries order by idx`.execute(store.handle.db);
        assert.equal(rows.rows.length, SOURCES.length);
        for (const r of rows.rows) {
          const want = sourceKey(SOURCES[Number(r.idx)]!);
          assert.deepEqual(
            r.source_key === null ? null : Buffer.from(r.source_key),
            want,
            `row ${r.idx} (${SOURCES[Number(r.idx)]})`,
          );
        }
        // New appends fill the column; the backfilled and the new rows are found by the index.
        await store.audit.appendEvents([event(100, "203.0.113.200")]);
        const size = await store.audit.size();
        const set = matchSet(
          [
            indicator(1, "[ipv4-addr:value ISSUBSET '203.0.113.0/24']"),
            indicator(2, "[ipv6-addr:value ISSUBSET '2001:db8:aa::/48']"),
          ],
          size,
        );
        const r = await retroScan(store.audit, set, 0, size);
        assert.deepEqual(found(r), [0, 2, 3, 8]);
        assert.equal(r.read, 4, "only the matching leaves are read");
      } finally {
        await store.close();
      }
    } finally {
      await t.dispose();
    }
  });

  test(`indexed search: IPv4/IPv6 addresses and CIDR networks, same answer as the leaf scan (${kind})`, async () => {
    const t = await freshDb(kind);
    const store = await openStore({ dataDir: t.dataDir, databaseUrl: t.databaseUrl });
    try {
      const sources = [
        ...SOURCES,
        "203.0.112.255", // just below the /24
        "203.0.113.0", // first of the /24
        "203.0.113.255", // last of the /24
        "192.0.2.7", // the exact address
        "192.0.2.8",
        "2001:db8:aa:ffff:ffff:ffff:ffff:ffff", // last of the /48
        "2001:db8:a9:ffff:ffff:ffff:ffff:ffff", // just below it
        "2001:db8::5", // the exact IPv6 address
        "2001:db8::6",
      ];
      await store.audit.appendEvents(sources.map((s, n) => event(n, s, `user${n}`)));
      const size = await store.audit.size();
      const set = matchSet(
        [
          indicator(1, "[ipv4-addr:value ISSUBSET '203.0.113.0/24']"),
          indicator(2, "[ipv6-addr:value ISSUBSET '2001:db8:aa::/48'] OR [ipv4-addr:value = '192.0.2.7']"),
          indicator(3, "[ipv6-addr:value = '2001:db8::5']"),
          indicator(4, "[ipv4-addr:value = '203.0.113.45']"), // inside indicator 1's network: one row, two indicators
        ],
        size,
      );
      const want = sources.flatMap((s, i) =>
        ["203.0.113.45", "2001:db8:aa::7", "::ffff:203.0.113.9", "203.0.113.0", "203.0.113.255", "192.0.2.7"]
          .concat(["2001:db8:aa:ffff:ffff:ffff:ffff:ffff", "2001:db8::5"])
          .includes(s)
          ? [i]
          : [],
      );
      const byIndex = await retroScan(store.audit, set, 0, size);
      const byLeaves = await retroScanLeaves(store.audit, set, 0, size);
      assert.deepEqual(found(byIndex), want);
      assert.deepEqual(found(byLeaves), want);
      assert.equal(byIndex.read, want.length, "the index returned only matching rows");
      assert.deepEqual(byIndex.mismatches, []);
      const g = [...byIndex.groups.values()].find((x) => x.indexes.includes(0))!;
      assert.deepEqual([...g.inds].map((i) => i.name).sort(), ["ind 1", "ind 4"]);
      // The range is honoured: from/to bound the search.
      assert.deepEqual(
        found(await retroScan(store.audit, set, 3, 12)),
        want.filter((i) => i >= 3 && i < 12),
      );
    } finally {
      await store.close();
      await t.dispose();
    }
  });

  test(`an edited source_key column does not hide an intruder's entry (${kind})`, async () => {
    const t = await freshDb(kind);
    const store = await openStore({ dataDir: t.dataDir, databaseUrl: t.databaseUrl });
    const alerts: NewAlert[] = [];
    let position = 0;
    const iocs = new IocService(
      store.handle.db,
      store.audit,
      () => Date.parse(T),
      () => ({
        get position() {
          return position;
        },
        addExternal: (a: NewAlert[]) => alerts.push(...a),
      }),
    );
    try {
      // 30 benign entries from the office; the intruder (mallory) came from 203.0.113.45 at 10 and 20.
      await store.audit.appendEvents(
        Array.from({ length: 30 }, (_, n) =>
          n === 10 || n === 20 ? event(n, "203.0.113.45", "mallory") : event(n, "10.0.0.1"),
        ),
      );
      position = await store.audit.size();
      const db = store.handle.db;
      // Before anything was imported, nothing is edited: the check is quiet.
      assert.deepEqual((await iocs.checkSourceIndex()).mismatches, []);

      // The intruder edits the database: entry 20's column now says 10.0.0.1 (and entry 10's is NULL); a benign
      // entry (5) is pointed INTO the network to bury the real one among noise.
      await sql`update audit_log_entries set source_key = ${sourceKey("10.0.0.1")} where idx = 20`.execute(db);
      await sql`update audit_log_entries set source_key = null where idx = 10`.execute(db);
      await sql`update audit_log_entries set source_key = ${sourceKey("203.0.113.46")} where idx = 5`.execute(db);

      iocs.autoCheck = false;
      const rep = await iocs.importObjects([indicator(1, "[ipv4-addr:value ISSUBSET '203.0.113.0/24']")], {
        id: "file:officer",
        name: "a bundle",
      });
      // The index alone misses the edited entries, and the entry pointed into the network matches nothing.
      assert.deepEqual(rep.retro.matches, []);
      assert.equal(rep.retro.indexMismatches, 1);
      assert.equal(alerts.length, 0);

      // The column check (run in the background after every search) finds all three edits.
      const check = await iocs.checkSourceIndex();
      assert.deepEqual(check.mismatches, [5, 10, 20]);
      const critical = alerts.filter((a) => a.alert.rule === INDEX_RULE);
      assert.equal(critical.length, 2, "one per actor whose entries were edited");
      assert.ok(critical.every((a) => a.alert.severity === "critical"));
      const m = critical.find((a) => a.alert.actor === "mallory")!;
      assert.deepEqual(m.alert.events, [event(10, "", "mallory").id, event(20, "", "mallory").id]);
      const hidden = alerts.filter((a) => a.alert.rule === IOC_RULE);
      assert.equal(hidden.length, 1);
      assert.equal(hidden[0]!.alert.actor, "mallory");
      assert.deepEqual(hidden[0]!.alert.events, m.alert.events);
      assert.match(hidden[0]!.alert.reason, /edited in the database/);

      // With the automatic check on (the default), a search schedules it: the same alerts come without asking.
      alerts.length = 0;
      iocs.autoCheck = true;
      const rep2 = await iocs.importObjects([indicator(2, "[ipv4-addr:value = '203.0.113.45']")], {
        id: "file:officer",
        name: "a bundle",
      });
      assert.equal(rep2.retro.indexCheck, "scheduled");
      await iocs.checksDone();
      assert.ok(alerts.some((a) => a.alert.rule === INDEX_RULE && a.alert.actor === "mallory"));
      assert.ok(alerts.some((a) => a.alert.rule === IOC_RULE && a.alert.actor === "mallory"));
    } finally {
      await iocs.stop();
      await store.close();
      await t.dispose();
    }
  });
}
