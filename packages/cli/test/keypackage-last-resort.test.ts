/**
 * Issue 13 finding 5, client side, on every database: after a drain only the last-resort key package is left on the
 * server; it is handed out for every join until a newer upload replaces it, so the device must keep its private key.
 * Before: the private key was deleted on first use and the next join failed silently ("none of our key packages is
 * addressed") — a later acknowledged message was never delivered.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { world, texts } from "./helpers.js";

const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
  { handle: "kcerna", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
];

for (const kind of DATABASE_KINDS) {
  describe(`last-resort key package on ${kind}`, { timeout: 120_000 }, () => {
    test("two joins on the last-resort package after a drain both succeed", async () => {
      const w = await world(kind, people);
      try {
        const jan = await w.enroll("jnovak");
        const petr = await w.enroll("pdvorak");
        const katka = await w.enroll("kcerna");
        const d = w.server.store.directory;
        // The drain (at the storage layer: the HTTP claim is now limited; see server hardening-http.test.ts).
        while ((await d.countKeyPackages(petr.deviceId)) > 1) await d.claimKeyPackages([petr.deviceId]);
        await jan.send("pdvorak", "first", "RESTRICTED");
        assert.deepEqual(texts(await petr.sync()), ["first"]);
        // petr's sync replenished; the old last resort is the oldest package now and is handed out next.
        await katka.send("pdvorak", "second", "RESTRICTED");
        assert.deepEqual(texts(await petr.sync()), ["second"]);
        // Once used as an ordinary (not last-resort) package, it is gone from the server and from the device.
        assert.equal(await d.countKeyPackages(petr.deviceId), 20);
      } finally {
        await w.close();
      }
    });
  });
}
