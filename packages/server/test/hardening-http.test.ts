/**
 * Server hardening over HTTP (issue 13 findings 4, 5, 6, 7, 9, 10), on every database. Messages are JSON routing
 * headers (jsonMls): these tests are about the server's rules, not MLS (the MLS commit inspection has its own test in
 * hardening-mls.test.ts).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, randomId, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, jsonMls, login, mlsBytes, type Session } from "./helpers/content.js";

async function auditEvents(srv: TestServer): Promise<AuditEvent[]> {
  const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
  return raw.map((x) => parseAuditEvent(x)).flatMap((p) => (p.ok ? [p.event] : []));
}

function send(url: string, as: Session, conv: string, idem: string) {
  return call(
    url,
    as,
    "POST",
    `/v1/conversations/${conv}/messages`,
    mlsBytes({ w: "private", g: conv, e: 0, c: "application" }),
    {
      "content-type": "application/octet-stream",
      "idempotency-key": idem,
    },
  );
}

for (const kind of DATABASE_KINDS) {
  describe(`server hardening on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let alice: Session;
    let mallory: Session;

    before(async () => {
      srv = await startTestServer(kind, { mls: jsonMls });
      url = srv.url;
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "mallory", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      alice = await login(url, srv.store, "alice", "d-alice00001");
      mallory = await login(url, srv.store, "mallory", "d-mallory001");
    });
    after(async () => {
      await srv.close();
    });

    async function conversation(as: Session): Promise<string> {
      const id = randomId("c");
      const c = await call(url, as, "POST", "/v1/conversations", { id, label: "UNCLASSIFIED", kind: "group" });
      assert.equal(c.status, 201, c.text);
      return id;
    }

    test("finding 4: reusing an idempotency key never fails another user's sends; audited and rate-limited", async () => {
      const [m1, m2, a1] = [await conversation(mallory), await conversation(mallory), await conversation(alice)];
      assert.equal((await send(url, mallory, m1, "mallory-key-0001")).status, 201);
      let aliceOk = 0;
      let n = 0;
      const statuses: number[] = [];
      // Mallory loops on the reused key while alice sends: they share group commits.
      const loop = (async () => {
        for (let i = 0; i < 40; i++) {
          const r = await send(url, mallory, m2, "mallory-key-0001");
          statuses.push(r.status);
        }
      })();
      const sends = Array.from({ length: 30 }, () =>
        send(url, alice, a1, `alice-key-${++n}-${Date.now()}`).then((r) => {
          assert.equal(r.status, 201, r.text);
          aliceOk++;
        }),
      );
      await Promise.all([loop, ...sends]);
      assert.equal(aliceOk, 30);
      assert.equal(statuses[0], 409);
      // 10 conflicts a minute per device, then 429 without touching the shared batch.
      assert.equal(statuses.filter((s) => s === 409).length, 10, statuses.join(","));
      assert.ok(
        statuses.slice(10).every((s) => s === 429),
        statuses.join(","),
      );
      const denied = (await auditEvents(srv)).filter(
        (e) => e.actor === "mallory" && e.action === "message.send" && e.object === m2 && e.outcome === "denied",
      );
      assert.equal(denied.length, 10);
      // Over budget, even a retry of its own first send waits.
      assert.equal((await send(url, mallory, m1, "mallory-key-0001")).status, 429);
    });

    test("finding 5: key packages are claimed only for a conversation the caller may add the device to", async () => {
      const d = srv.store.directory;
      await d.addUnit("EMB/BEIJING", "SECRET/ASIA");
      await d.addUser({ handle: "bob", units: ["EMB/BEIJING"], clearance: "RESTRICTED", role: "user" });
      await d.addUser({ handle: "carol", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA", role: "user" });
      const bob = await login(url, srv.store, "bob", "d-bob0000001");
      const carol = await login(url, srv.store, "carol", "d-carol00001");
      await d.addKeyPackages(
        alice.device,
        Array.from({ length: 10 }, (_, i) => ({ ref: `ref-alice-${i}`, data: new Uint8Array([i]) })),
      );
      await d.addKeyPackages(bob.device, [{ ref: "ref-bob-0", data: new Uint8Array([7]) }]);
      // No relation named: refused (before: anyone drained anyone's packages).
      const bare = await call(url, mallory, "POST", "/v1/keypackages/claim", { devices: [alice.device] });
      assert.equal(bare.status, 400, bare.text);
      // Not a member of the conversation named.
      const aliceConv = await conversation(alice);
      const notMine = await call(url, mallory, "POST", "/v1/keypackages/claim", {
        devices: [alice.device],
        conversation: aliceConv,
      });
      assert.equal(notMine.status, 404, notMine.text);
      // A SECRET conversation: bob (RESTRICTED) may not be added, so his package is not handed out.
      const secret = randomId("c");
      assert.equal(
        (await call(url, mallory, "POST", "/v1/conversations", { id: secret, label: "SECRET", kind: "group" })).status,
        201,
      );
      const uncleared = await call(url, mallory, "POST", "/v1/keypackages/claim", {
        devices: [bob.device],
        conversation: secret,
      });
      assert.equal(uncleared.status, 403, uncleared.text);
      // A unit channel of HQ/ASIA-1: carol (EMB/BEIJING) is not a member of the unit.
      const unit = randomId("c");
      assert.equal(
        (
          await call(url, mallory, "POST", "/v1/conversations", {
            id: unit,
            label: "UNCLASSIFIED",
            kind: "unit",
            unit: "HQ/ASIA-1",
          })
        ).status,
        201,
      );
      const outside = await call(url, mallory, "POST", "/v1/keypackages/claim", {
        devices: [carol.device],
        conversation: unit,
      });
      assert.equal(outside.status, 403, outside.text);
      assert.equal(await d.countKeyPackages(bob.device), 1);
      // Draining alice through a conversation mallory may add her to: 5, then 429 (per caller and target).
      const mine = await conversation(mallory);
      const got: number[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await call<{ keyPackages: { device: string }[] }>(url, mallory, "POST", "/v1/keypackages/claim", {
          devices: [alice.device],
          conversation: mine,
        });
        got.push(r.status);
      }
      assert.deepEqual(got, [200, 200, 200, 200, 200, 429, 429, 429]);
      assert.equal(await d.countKeyPackages(alice.device), 5);
      // Each claimed package is audited with the target device; the refused claims as denials.
      const ev = (await auditEvents(srv)).filter((e) => e.actor === "mallory" && e.action === "directory.read");
      assert.equal(ev.filter((e) => e.target_device === alice.device && e.outcome === "ok").length, 5);
      assert.ok(ev.filter((e) => e.outcome === "denied").length >= 3);
      // Fresh packages first, oldest first; the last resort (the newest upload's last) is handed out but kept.
      await d.addKeyPackages(carol.device, [
        { ref: "ref-carol-a", data: new Uint8Array([1]) },
        { ref: "ref-carol-0", data: new Uint8Array([2]) },
      ]);
      const taken: number[] = [];
      const other = await conversation(alice);
      for (let i = 0; i < 3; i++) {
        const r = await call<{ keyPackages: { keyPackage: string }[] }>(url, alice, "POST", "/v1/keypackages/claim", {
          devices: [carol.device],
          conversation: other,
        });
        assert.equal(r.status, 200, r.text);
        taken.push(Buffer.from(r.json.keyPackages[0]!.keyPackage, "base64")[0]!);
      }
      // Upload order, not ref order (before: ordered by ref within an upload, so the last resort was arbitrary).
      assert.deepEqual(taken, [1, 2, 2]);
    });
  });
}
