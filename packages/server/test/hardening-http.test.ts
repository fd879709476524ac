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
  });
}
