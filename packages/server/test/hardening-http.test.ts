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
import { call, jsonMls, login, mlsBytes, uploadBlob, type Session } from "./helpers/content.js";
import { rmSync } from "node:fs";
import { generateKeyPairSync, sign } from "node:crypto";
import { join } from "node:path";
import { WebSocket } from "ws";
import { serveMetrics } from "../src/index.js";
import { createMetrics } from "../src/metrics.js";

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
      // 10 conflicts a minute per device (one more per 6 s on a slow run), then 429 without touching the batch.
      const conflicts = statuses.filter((s) => s === 409).length;
      assert.ok(conflicts >= 10 && conflicts <= 13, statuses.join(","));
      assert.deepEqual(statuses.slice(0, 10), Array<number>(10).fill(409));
      assert.ok(statuses.filter((s) => s === 429).length >= 27, statuses.join(","));
      assert.ok(
        statuses.every((s) => s === 409 || s === 429),
        statuses.join(","),
      );
      const denied = (await auditEvents(srv)).filter(
        (e) => e.actor === "mallory" && e.action === "message.send" && e.object === m2 && e.outcome === "denied",
      );
      assert.equal(denied.length, conflicts);
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

    test("finding 7: socket logins and pushed ciphertext are audited before the frame leaves", async () => {
      const conv = await conversation(alice);
      // Pushes go to the other member devices (never back to the sending device): alice's second device, a member
      // of the conversation (its membership row written directly: this is about the hub, not MLS).
      const alice2 = await login(url, srv.store, "alice", "d-alice00002");
      await srv.store.handle.db
        .insertInto("conversation_members")
        .values({ conversation_id: conv, device_id: alice2.device, joined_seq: 1, left_seq: null })
        .execute();
      const before = (await auditEvents(srv)).length;
      const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
      const frames: Record<string, unknown>[] = [];
      const ready = new Promise<void>((resolve, reject) => {
        ws.on("message", (raw: Buffer) => {
          const f = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
          frames.push(f);
          if (f.type === "ready") resolve();
        });
        ws.on("error", reject);
      });
      await new Promise((r) => ws.once("open", r));
      ws.send(JSON.stringify({ type: "auth", token: alice2.token }));
      await ready;
      const sends = [];
      for (let i = 0; i < 20; i++) sends.push(send(url, alice, conv, `push-key-${i}-${Date.now()}`));
      for (const r of await Promise.all(sends)) assert.equal(r.status, 201, r.text);
      const deadline = Date.now() + 10_000;
      while (frames.filter((f) => f.type === "message").length < 20 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      ws.close();
      const pushed = frames.filter((f) => f.type === "message").map((f) => f.seq as number);
      assert.deepEqual(
        pushed,
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      const ev = (await auditEvents(srv)).slice(before);
      const logins = ev.filter((e) => e.action === "login" && e.device === alice2.device);
      assert.equal(logins.length, 1);
      assert.equal(logins[0]!.source, "127.0.0.1");
      const reads = ev.filter((e) => e.action === "message.read" && e.object === conv && e.device === alice2.device);
      assert.equal(reads.length, 20);
      assert.equal(reads[0]!.label, "UNCLASSIFIED");
    });

    test("finding 9: X-Forwarded-For is believed only from trusted proxies (audit source, rate limits)", async () => {
      const forwarded = (ip: string) => ({ "x-forwarded-for": ip });
      // Not trusted (the default): the header is ignored, the TCP peer is the source.
      const conv = await conversation(alice);
      assert.equal(
        (await call(url, alice, "GET", `/v1/conversations/${conv}`, undefined, forwarded("198.51.100.7"))).status,
        200,
      );
      let ev = (await auditEvents(srv)).filter((e) => e.object === conv && e.action === "message.read");
      assert.equal(ev.at(-1)!.source, "127.0.0.1");
      // Behind a trusted proxy (here: loopback), the forwarded client is the source, and has its own login budget.
      const proxied = await startTestServer(kind, {
        mls: jsonMls,
        loginRatePerMinute: 2,
        app: { trustProxy: ["127.0.0.0/8"] },
      });
      const other = await startTestServer(kind, { mls: jsonMls, app: { trustProxy: ["10.0.0.0/8"] } });
      try {
        await proxied.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
        await proxied.store.directory.addUser({
          handle: "alice",
          units: ["HQ/ASIA-1"],
          clearance: "SECRET",
          role: "user",
        });
        const challenge = (ip: string) =>
          call(proxied.url, null, "POST", "/v1/auth/challenge", { device: "d-nobody0001" }, forwarded(ip));
        assert.equal((await challenge("198.51.100.7")).status, 200);
        assert.equal((await challenge("198.51.100.7")).status, 200);
        assert.equal((await challenge("198.51.100.7")).status, 429);
        // Another client behind the same proxy is not throttled with the first.
        assert.equal((await challenge("203.0.113.9")).status, 200);
        const s = await login(proxied.url, proxied.store, "alice", "d-alice00001");
        const c = randomId("c");
        await call(proxied.url, s, "POST", "/v1/conversations", { id: c, label: "UNCLASSIFIED", kind: "group" });
        await call(proxied.url, s, "GET", `/v1/conversations/${c}`, undefined, forwarded("192.0.2.44"));
        ev = (await auditEvents(proxied)).filter((e) => e.object === c && e.action === "message.read");
        assert.equal(ev.at(-1)!.source, "192.0.2.44");
        // A proxy list that does not include the peer: the header is ignored again (one budget for both).
        await other.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
        await other.store.directory.addUser({
          handle: "alice",
          units: ["HQ/ASIA-1"],
          clearance: "SECRET",
          role: "user",
        });
        const s2 = await login(other.url, other.store, "alice", "d-alice00001");
        const c2 = randomId("c");
        await call(other.url, s2, "POST", "/v1/conversations", { id: c2, label: "UNCLASSIFIED", kind: "group" });
        await call(other.url, s2, "GET", `/v1/conversations/${c2}`, undefined, forwarded("192.0.2.44"));
        ev = (await auditEvents(other)).filter((e) => e.object === c2 && e.action === "message.read");
        assert.equal(ev.at(-1)!.source, "127.0.0.1");
      } finally {
        await proxied.close();
        await other.close();
      }
    });

    test("finding 10: /metrics is not on the API port without its token; on its own listener it is", async () => {
      assert.equal((await call(url, null, "GET", "/metrics")).status, 404);
      assert.equal((await call(url, alice, "GET", "/metrics")).status, 404);
      const withToken = await startTestServer(kind, {
        mls: jsonMls,
        app: { metricsToken: "m-token-0123456789abcdef" },
      });
      try {
        assert.equal((await call(withToken.url, null, "GET", "/metrics")).status, 401);
        const bad = await fetch(`${withToken.url}/metrics`, {
          headers: { authorization: "Bearer wrong-token-0123456789" },
        });
        assert.equal(bad.status, 401);
        const ok = await fetch(`${withToken.url}/metrics`, {
          headers: { authorization: "Bearer m-token-0123456789abcdef" },
        });
        assert.equal(ok.status, 200);
        assert.match(await ok.text(), /valise_http_requests_total/);
      } finally {
        await withToken.close();
      }
      const m = await serveMetrics({ metrics: createMetrics() }, "127.0.0.1", 0);
      try {
        const r = await fetch(m.url);
        assert.equal(r.status, 200);
        assert.match(await r.text(), /valise_append_batch_size/);
        assert.equal((await fetch(m.url.replace("/metrics", "/v1/me"))).status, 404);
      } finally {
        await m.close();
      }
    });

    test("finding 10: per-user blob quota (413 naming the usage); a missing blob file is 404, not 500", async () => {
      const q = await startTestServer(kind, { mls: jsonMls, app: { blobQuotaBytes: 1000 } });
      try {
        await q.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
        await q.store.directory.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
        await q.store.directory.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
        const a = await login(q.url, q.store, "alice", "d-alice00001");
        const b = await login(q.url, q.store, "bob", "d-bob0000001");
        const id = await uploadBlob(q.url, a, new Uint8Array(600).fill(7));
        const over = await call(q.url, a, "POST", "/v1/blobs", { size: 500 });
        assert.equal(over.status, 413, over.text);
        assert.equal(over.json.code, "too_large");
        assert.match(String(over.json.message), /quota/);
        assert.equal(over.json.usedBytes, 600);
        assert.equal(over.json.quotaBytes, 1000);
        // Per user: bob's own quota is untouched.
        assert.equal((await call(q.url, b, "POST", "/v1/blobs", { size: 900 })).status, 201);
        assert.equal((await call(q.url, a, "POST", "/v1/blobs", { size: 400 })).status, 201);
        // The blob's file disappears from the store: 404 with a clear message (before: 500).
        const got = await fetch(`${q.url}/v1/blobs/${id}`, { headers: { authorization: `Bearer ${a.token}` } });
        assert.equal(got.status, 200);
        await got.arrayBuffer();
        rmSync(join(q.db.dataDir, "blobs", id.slice(2, 4), id));
        const gone = await call(q.url, a, "GET", `/v1/blobs/${id}`);
        assert.equal(gone.status, 404, gone.text);
        assert.match(String(gone.json.message), /missing/);
      } finally {
        await q.close();
      }
    });

    test("finding 10: a device enrolled from a browser must use its passkey (device key alone only to register it)", async () => {
      const d = srv.store.directory;
      await d.addUser({ handle: "wendy", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      const enrollAndLogin = async (device: string, headers: Record<string, string>) => {
        const { publicKey, privateKey } = generateKeyPairSync("ed25519");
        const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
        const { enrollmentCode } = await d.newEnrollmentCode("wendy");
        const e = await srv.app.inject({
          method: "POST",
          url: "/v1/enroll",
          headers,
          payload: {
            code: enrollmentCode,
            device: { id: device, name: "t", signaturePublicKey: raw.toString("base64") },
            keyPackages: [],
          },
        });
        assert.equal(e.statusCode, 201, e.body);
        return async () => {
          const ch = (await srv.app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device } })).json<{
            challenge: string;
          }>().challenge;
          const signature = sign(null, Buffer.from(`valise-login:${ch}`), privateKey).toString("base64");
          return srv.app.inject({
            method: "POST",
            url: "/v1/auth/session",
            payload: { device, challenge: ch, signature },
          });
        };
      };
      const browserLogin = await enrollAndLogin("d-wendyweb01", {
        origin: "https://valise.mfa.example",
        "sec-fetch-mode": "cors",
      });
      const cliLogin = await enrollAndLogin("d-wendycli01", {});
      // Within the enrollment window: the device key alone logs in (to register the passkey).
      assert.equal((await browserLogin()).statusCode, 201);
      await srv.store.handle.db
        .updateTable("browser_devices")
        .set({ enrolled_at: Date.now() - 16 * 60 * 1000 })
        .where("device_id", "=", "d-wendyweb01")
        .execute();
      const late = await browserLogin();
      assert.equal(late.statusCode, 401, late.body);
      assert.equal(late.json<{ passkeyRequired?: boolean }>().passkeyRequired, true);
      // A CLI device (no browser headers at enrollment) is unaffected.
      assert.equal((await cliLogin()).statusCode, 201);
    });
  });
}
