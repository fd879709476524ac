/**
 * Issue 19 part 6, retention of ciphertext: rules per unit and per label delete messages (and inbox entries), cables
 * and document versions — with their blob bytes, on disk or in PostgreSQL — older than the rule, keep what is newer
 * and what no rule matches, let the longest matching rule win, hold a unit with a records archive until its archive
 * mark, audit counts (never ids), and run on the server's leader by itself. SQLite and PostgreSQL.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseAuditEvent } from "@valise/core";
import { ADMIN_CLI, buildApp, openStore, protocolServerMls, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const DAY = 86_400_000;

for (const kind of DATABASE_KINDS)
  for (const blobStore of kind === "postgres" ? (["fs", "pg"] as const) : (["fs"] as const))
    describe(`retention (${kind}, blobs ${blobStore})`, { timeout: 120_000 }, () => {
      const dbs: TestDb[] = [];
      const stores: Store[] = [];
      after(async () => {
        for (const s of stores) await s.close();
        for (const d of dbs) await d.dispose();
      });

      /** A store whose clock the test sets, with units HQ/A, HQ/B, HQ/ARCH and items made `age` days ago. */
      async function setup() {
        const db = await freshDb(kind);
        dbs.push(db);
        let now = Date.parse("2026-06-01T00:00:00Z");
        const clock = { now: () => now };
        const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl, clock, blobStore });
        stores.push(store);
        for (const u of ["HQ/A", "HQ/B", "HQ/ARCH"]) await store.directory.addUnit(u, "SECRET");
        await store.directory.addUser({ handle: "ann", units: ["HQ/A"], clearance: "SECRET", role: "user" });
        const k = store.handle.db;
        const blob = async (bytes: number, at: number) => {
          const id = `b-${randomBytes(8).toString("hex")}`;
          await store.blobBytes.create(id);
          await store.blobBytes.append(
            id,
            0,
            (async function* () {
              yield randomBytes(bytes);
            })(),
            bytes,
          );
          await k
            .insertInto("blobs")
            .values({
              id,
              owner: "ann",
              owner_device: "d-ann",
              size: bytes,
              received: bytes,
              complete: 1,
              object_kind: null,
              object_id: null,
              created_at: at,
              completed_at: at,
            })
            .execute();
          return id;
        };
        const conversation = async (id: string, label: string, unit: string | null) => {
          await k
            .insertInto("conversations")
            .values({
              id,
              kind: unit ? "unit" : "group",
              label,
              unit,
              from_unit: null,
              creator: "ann",
              epoch: 0,
              head_seq: 0,
              group_info: null,
              created_at: now - 400 * DAY,
            })
            .execute();
        };
        let seq = 0;
        const message = async (conv: string, ageDays: number) => {
          const at = now - ageDays * DAY;
          seq++;
          await k
            .insertInto("messages")
            .values({
              conversation_id: conv,
              seq,
              kind: "application",
              epoch: 0,
              sender_device: "d-ann",
              payload: randomBytes(32),
              idem_key: `i${seq}`,
              created_at: at,
            })
            .execute();
          await k
            .insertInto("inbox")
            .values({
              device_id: "d-ann",
              conversation_id: conv,
              commit_seq: seq,
              payload: randomBytes(8),
              created_at: at,
            })
            .execute();
        };
        let serial = 0;
        const cable = async (originator: string, to: string, label: string, ageDays: number) => {
          const at = now - ageDays * DAY;
          const id = `k-${randomBytes(8).toString("hex")}`;
          const b = await blob(1000, at);
          serial++;
          await k
            .insertInto("cables")
            .values({
              id,
              reference: `${originator} 2026/${String(serial).padStart(6, "0")}`,
              originator,
              year: 2026,
              serial,
              sender: "ann",
              sender_device: "d-ann",
              precedence: "ROUTINE",
              precedence_rank: 0,
              label,
              blob: b,
              size: 1000,
              corrects: null,
              request_hash: "h",
              created_at: at,
            })
            .execute();
          await k
            .insertInto("cable_addressees")
            .values({
              cable_id: id,
              unit: to,
              role: "action",
              position: 0,
              delivered_at: null,
              delivered_by: null,
              read_at: null,
              read_by: null,
            })
            .execute();
          await k
            .insertInto("cable_device_receipts")
            .values({ device_id: "d-ann", cable_id: id, state: "delivered", delivered_at: at, read_at: null })
            .execute();
          return { id, blob: b };
        };
        const documentVersions = async (unit: string, label: string, ages: number[]) => {
          const id = `f-${randomBytes(8).toString("hex")}`;
          await k
            .insertInto("documents")
            .values({
              id,
              owner: "ann",
              label,
              to_kind: "unit",
              to_name: unit,
              canary: 0,
              created_at: now - ages[0]! * DAY,
            })
            .execute();
          const blobs: string[] = [];
          for (const [i, age] of ages.entries()) {
            const b = await blob(500, now - age * DAY);
            blobs.push(b);
            await k
              .insertInto("document_versions")
              .values({
                document_id: id,
                version: i + 1,
                blob: b,
                size: 500,
                created_at: now - age * DAY,
                created_by: "ann",
              })
              .execute();
          }
          return { id, blobs };
        };
        const count = async (table: "messages" | "inbox", conv: string) =>
          Number(
            (
              await k
                .selectFrom(table)
                .select((eb) => eb.fn.countAll().as("n"))
                .where("conversation_id", "=", conv)
                .executeTakeFirstOrThrow()
            ).n,
          );
        const has = async (table: "cables" | "documents", id: string) =>
          (await k.selectFrom(table).select("id").where("id", "=", id).executeTakeFirst()) !== undefined;
        return {
          store,
          clock,
          setNow: (t: number) => (now = t),
          conversation,
          message,
          cable,
          documentVersions,
          count,
          has,
        };
      }

      test("older than the rule: gone with its blob bytes; newer or unmatched: kept; audited as counts", async () => {
        const t = await setup();
        await t.conversation("c-a", "CONFIDENTIAL", "HQ/A");
        await t.conversation("c-b", "CONFIDENTIAL", "HQ/B");
        for (const age of [40, 31, 29, 1]) await t.message("c-a", age);
        for (const age of [400, 1]) await t.message("c-b", age);
        const oldCable = await t.cable("HQ/B", "HQ/A", "CONFIDENTIAL", 45); // addressed to HQ/A: its rule applies
        const newCable = await t.cable("HQ/B", "HQ/A", "CONFIDENTIAL", 5);
        const otherCable = await t.cable("HQ/B", "HQ/B", "CONFIDENTIAL", 300); // no rule matches
        const doc = await t.documentVersions("HQ/A", "CONFIDENTIAL", [60, 50]); // both versions old: document goes
        const doc2 = await t.documentVersions("HQ/A", "CONFIDENTIAL", [60, 2]); // the new version stays
        const auditBefore = await t.store.audit.size();

        await t.store.retention.setRule("unit", "HQ/A", 30 * DAY, ADMIN_CLI);
        await assert.rejects(t.store.retention.setRule("unit", "HQ/NONE", DAY, ADMIN_CLI), /no unit/);
        const r = await t.store.retention.run();

        assert.equal(await t.count("messages", "c-a"), 2, "messages of 29 and 1 days kept, 40 and 31 gone");
        assert.equal(await t.count("inbox", "c-a"), 2);
        assert.equal(await t.count("messages", "c-b"), 2, "HQ/B has no rule: kept for ever");
        assert.equal(await t.has("cables", oldCable.id), false);
        assert.equal(await t.store.blobBytes.size(oldCable.blob), null, "the old cable's bytes are deleted");
        assert.equal(await t.has("cables", newCable.id), true);
        assert.ok((await t.store.blobBytes.size(newCable.blob)) === 1000);
        assert.equal(await t.has("cables", otherCable.id), true);
        assert.equal(await t.has("documents", doc.id), false, "a document with no version left goes");
        for (const b of doc.blobs) assert.equal(await t.store.blobBytes.size(b), null);
        assert.equal(await t.has("documents", doc2.id), true);
        assert.equal(await t.store.blobBytes.size(doc2.blobs[0]!), null);
        assert.equal(await t.store.blobBytes.size(doc2.blobs[1]!), 500);
        assert.deepEqual(
          [r.messages, r.inbox, r.cables, r.documentVersions, r.documents, r.blobs, r.bytes],
          [2, 2, 1, 3, 1, 4, 2500],
        );
        // No blob row of a deleted item is left.
        const rows = await t.store.handle.db.selectFrom("blobs").select("id").execute();
        assert.equal(rows.length, 3);

        // Audited: the rule change and one event per kind with its count, no ids or content.
        const events = (await t.store.audit.entries(auditBefore, 100)).map((e) => {
          const p = parseAuditEvent(e);
          assert.ok(p.ok);
          return p.event;
        });
        const set = events.filter((e) => e.action === "retention.set");
        assert.deepEqual(
          set.map((e) => [e.actor, e.object, e.unit]),
          [["admin-cli", "unit:HQ/A", "HQ/A"]],
        );
        const del = events.filter((e) => e.action === "retention.delete");
        assert.deepEqual(
          del.map((e) => [e.actor, e.object, e.unit, e.bytes]).sort(),
          [
            ["server", "cables:1", "HQ/A", 1000],
            ["server", "documentVersions:3", "HQ/A", 1500],
            ["server", "documents:1", "HQ/A", 0],
            ["server", "inbox:2", "HQ/A", 0],
            ["server", "messages:2", "HQ/A", 0],
          ].sort(),
        );
        // A second run deletes nothing more and audits nothing.
        const size = await t.store.audit.size();
        const again = await t.store.retention.run();
        assert.equal(again.messages + again.cables + again.documentVersions, 0);
        assert.equal(await t.store.audit.size(), size);
      });

      test(
        "label rules; the longest matching rule wins; removing a rule keeps its items",
        { skip: blobStore === "pg" && "blob-independent" },
        async () => {
          const t = await setup();
          await t.conversation("c-s", "SECRET", "HQ/A");
          await t.conversation("c-c", "CONFIDENTIAL", null);
          for (const age of [100, 20]) await t.message("c-s", age);
          for (const age of [100, 20]) await t.message("c-c", age);
          await t.store.retention.setRule("unit", "HQ/A", 10 * DAY, ADMIN_CLI);
          await t.store.retention.setRule("label", "SECRET", 365 * DAY, ADMIN_CLI);
          await t.store.retention.setRule("label", "CONFIDENTIAL", 50 * DAY, ADMIN_CLI);
          assert.deepEqual(
            (await t.store.retention.rules()).map((r) => `${r.scope}:${r.name}`),
            ["label:CONFIDENTIAL", "label:SECRET", "unit:HQ/A"],
          );
          const r = await t.store.retention.run();
          assert.equal(await t.count("messages", "c-s"), 2, "SECRET keeps 365 d over HQ/A's 10 d");
          assert.equal(await t.count("messages", "c-c"), 1, "CONFIDENTIAL (no unit): 100 d gone, 20 d kept");
          assert.deepEqual(Object.keys(r.byRule), ["label:CONFIDENTIAL"]);
          assert.equal(await t.store.retention.removeRule("label", "SECRET", ADMIN_CLI), true);
          assert.equal(await t.store.retention.removeRule("label", "SECRET", ADMIN_CLI), false);
          await t.store.retention.run();
          assert.equal(await t.count("messages", "c-s"), 0, "now HQ/A's 10 d applies");
        },
      );

      test(
        "a unit with a records archive loses nothing newer than its archive mark",
        { skip: blobStore === "pg" && "blob-independent" },
        async () => {
          const t = await setup();
          await t.store.directory.addUser({ handle: "arch", units: [], clearance: "SECRET", role: "archivist" });
          await t.store.directory.assignArchive("arch", "HQ/ARCH");
          await t.conversation("c-x", "CONFIDENTIAL", "HQ/ARCH");
          for (const age of [300, 200, 100, 1]) await t.message("c-x", age);
          const c = await t.cable("HQ/A", "HQ/ARCH", "CONFIDENTIAL", 300);
          await t.store.retention.setRule("unit", "HQ/ARCH", 30 * DAY, ADMIN_CLI);
          const held = await t.store.retention.run();
          assert.equal(await t.count("messages", "c-x"), 4, "no archive mark: nothing deleted");
          assert.equal(await t.has("cables", c.id), true);
          assert.deepEqual(held.held, [{ unit: "HQ/ARCH", archivedThrough: null }]);
          const now = t.clock.now();
          await t.store.retention.markArchived("HQ/ARCH", now - 150 * DAY, ADMIN_CLI);
          await assert.rejects(t.store.retention.markArchived("HQ/ARCH", now - 160 * DAY, ADMIN_CLI), /already marked/);
          const r = await t.store.retention.run();
          assert.equal(
            await t.count("messages", "c-x"),
            2,
            "300 and 200 days (archived) gone; 100 days not archived yet",
          );
          assert.equal(await t.has("cables", c.id), false);
          assert.equal(r.held[0]?.unit, "HQ/ARCH");
          await t.store.retention.markArchived("HQ/ARCH", now, ADMIN_CLI);
          await t.store.retention.run();
          assert.equal(await t.count("messages", "c-x"), 1, "only the message inside the 30 days is left");
        },
      );

      test(
        "the server enforces the rules by itself (retentionIntervalMs)",
        { skip: blobStore === "pg" && "blob-independent" },
        async () => {
          const t = await setup();
          await t.conversation("c-a", "CONFIDENTIAL", "HQ/A");
          for (const age of [40, 1]) await t.message("c-a", age);
          await t.store.retention.setRule("unit", "HQ/A", 30 * DAY, ADMIN_CLI);
          const { app } = await buildApp({
            store: t.store,
            mls: protocolServerMls,
            retentionIntervalMs: 30,
            detect: false,
          });
          try {
            for (let i = 0; i < 200 && (await t.count("messages", "c-a")) > 1; i++)
              await new Promise((r) => setTimeout(r, 20));
            assert.equal(await t.count("messages", "c-a"), 1);
          } finally {
            await app.close();
          }
        },
      );
    });
