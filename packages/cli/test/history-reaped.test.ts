/**
 * A history transfer (issue 14 part 1) whose batches the server reclaimed (issue 14, the upload reaper of
 * routes-blobs.ts: uploads never attached to an object are deleted after their TTL) must not fail for ever, and the
 * new device never shows a partial history as complete. Also: the transfer goes on across a server restart (same
 * database, same port), on every database kind.
 *
 * In process: a server on a clock the test moves forward (so the reaper's TTL passes without waiting), clients with
 * in-memory sealed history stores. The laptop's approval is interrupted after one of three batches; the server
 * restarts; the phone gets the manifest and the one batch (INCOMPLETE); the blobs are reaped; the phone refuses the
 * missing batches (still INCOMPLETE, never complete); approving again gives the reaped transfer up and sends a new
 * one that replaces it (manifest `supersedes`); the phone then holds every message and reports complete.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HistoryStore, MemoryKeyStore, MemorySealedRecord, ValiseClient, type HistoryData } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { buildApp, openStore, protocolServerMls, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import type { FastifyInstance } from "fastify";

const TTL = 60_000;

for (const kind of DATABASE_KINDS) {
  describe(`history transfer: reaped batches and a server restart on ${kind}`, { timeout: 180_000 }, () => {
    test("an interrupted transfer resumes across a restart; after its blobs are reaped a new transfer replaces it", async () => {
      let skew = 0;
      const clock = { now: () => Date.now() + skew };
      const db: TestDb = await freshDb(kind);
      let srv: { app: FastifyInstance; store: Store } | null = null;
      let port = 0;
      const start = async () => {
        const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
        const { app } = await buildApp({
          store,
          mls: protocolServerMls,
          loginRatePerMinute: 10_000,
          clock,
          uploadTtlMs: TTL,
          uploadReapIntervalMs: 50,
        });
        const url = await app.listen({ port, host: "127.0.0.1" });
        port = Number(new URL(url).port);
        srv = { app, store };
        return url;
      };
      const stop = async () => {
        await srv?.app.close();
        await srv?.store.close();
        srv = null;
      };
      try {
        const url = await start();
        const dir = srv!.store.directory;
        await dir.addUnit("EMB/BEIJING", "SECRET/ASIA,NATO");
        for (const [handle, units] of [
          ["pdvorak", ["EMB/BEIJING"]],
          ["jnovak", []],
        ] as const)
          await dir.addUser({ handle, units: [...units], clearance: "SECRET/ASIA", role: "user" });
        const stores = new Map<string, HistoryStore>();
        const enroll = async (handle: string, name: string) => {
          const { enrollmentCode } = await srv!.store.directory.newEnrollmentCode(handle);
          const key = `${handle}/${name}`;
          return ValiseClient.enroll({
            serverUrl: url,
            code: enrollmentCode,
            deviceName: name,
            store: new MemoryKeyStore(),
            cipher: nodeStreamCipher(),
            history: async () => {
              const h = stores.get(key) ?? (await HistoryStore.open(new MemorySealedRecord<HistoryData>()));
              stores.set(key, h);
              return h;
            },
          });
        };
        const jnovak = await enroll("jnovak", "laptop");
        const laptop = await enroll("pdvorak", "laptop");
        const sent: string[] = [];
        for (let i = 1; i <= 5; i++) {
          const text = `message ${i} before the phone — Tōkyō`;
          await jnovak.send("pdvorak", text, "SECRET/ASIA");
          sent.push(text);
        }
        await laptop.sync();
        const lh = (await laptop.history())!;
        assert.equal(lh.messages().length, 5);
        lh.transferBatch = 2; // three batches

        const phone = await enroll("pdvorak", "phone");
        const ph = (await phone.history())!;
        // The approval is interrupted (the process dies) after the first batch is uploaded.
        await assert.rejects(
          laptop.approveDevice(phone.deviceId, undefined, (p) => {
            if (p.phase === "upload" && p.done === 1) throw new Error("interrupted");
          }),
          /interrupted/,
        );
        const first = lh.data.outgoing[0]!;
        assert.equal(first.batches.length, 3);
        assert.deepEqual(first.uploaded, [0]);

        // The server restarts (same database and port): the phone gets the manifest and the one batch there is.
        await stop();
        await start();
        await phone.sync();
        let t = ph.transfersIn();
        assert.equal(t.length, 1);
        assert.deepEqual([t[0]!.complete, t[0]!.received, t[0]!.batches], [false, 1, 3]);
        assert.equal(ph.messages().length, 2);

        // The server's clock passes the upload TTL: the reaper deletes the transfer's blobs (never attached).
        skew = 2 * TTL;
        const deadline = Date.now() + 20_000;
        for (;;) {
          const left = await Promise.all(first.batches.map((b) => srv!.store.blobs.get(b.blob)));
          if (left.every((b) => b === null)) break;
          assert.ok(Date.now() < deadline, "the reaper did not delete the history blobs");
          await new Promise((r) => setTimeout(r, 50));
        }
        skew = 0; // the clock back: what is created from now on lives its TTL
        // The phone refuses the missing batches: incomplete, and says so; never complete.
        const items = await phone.sync();
        const alerts = items.filter((i) => i.type === "alert").map((i) => i.text);
        assert.ok(
          alerts.some((a) => /is missing on the server: the history on this device is incomplete/.test(a)),
          alerts.join(" | "),
        );
        t = ph.transfersIn();
        assert.equal(t[0]!.complete, false);
        await phone.sync();
        assert.equal(ph.transfersIn()[0]!.complete, false, "still incomplete: never complete by accident");

        // Approving again notices the reaped blobs, gives that transfer up and sends a new one replacing it.
        const again = await laptop.approveDevice(phone.deviceId);
        assert.ok(again.history);
        assert.equal(again.history.replaced, first.id);
        assert.equal(again.history.resumed, false);
        assert.notEqual(again.history.transfer, first.id);
        assert.equal(again.history.messages, 5);
        assert.ok(first.done && first.abandoned, "the reaped transfer is given up");
        await phone.sync();
        t = ph.transfersIn();
        assert.deepEqual(
          t.map((x) => [x.id, x.complete, x.received, x.batches]),
          [[again.history.transfer, true, 3, 3]],
          "the replaced transfer no longer counts; the new one is complete",
        );
        assert.deepEqual(
          ph.messages().map((m) => m.text),
          sent,
        );
        // And a message sent after the restart still flows both ways.
        await jnovak.send("pdvorak", "after the restart", "SECRET/ASIA");
        assert.ok((await phone.sync()).some((i) => i.type === "message" && i.text === "after the restart"));
        jnovak.close();
        laptop.close();
        phone.close();
      } finally {
        await stop();
        await db.dispose();
      }
    });
  });
}
