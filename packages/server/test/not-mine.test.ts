/**
 * Issue 16, officer-facing: a user's "this device is not mine" (POST /v1/kt/reports, kind `not_mine`, subject the
 * device; `valise devices --not-mine DEVICE`) becomes a critical alert (rule device-not-mine) that officers see with
 * their alerts, and an incident opened with it. The same report again is a duplicate (no second alert or incident);
 * the reporting device itself or something that is not a device id is refused; other KT reports stay high.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, login, type Session } from "./helpers/content.js";

interface AlertRow {
  id: number;
  actor: string;
  rule: string;
  severity: string;
  reason: string;
}

for (const kind of DATABASE_KINDS) {
  describe(`"this device is not mine" on ${kind}`, () => {
    let srv: TestServer;
    let laptop: Session;
    let ghost: Session;
    let olga: Session;

    before(async () => {
      srv = await startTestServer(kind, { app: { taxiiPollMs: 0 } });
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUnit("HQ/SEC", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      laptop = await login(srv.url, srv.store, "alice", "d-alice00001");
      ghost = await login(srv.url, srv.store, "alice", "d-alice0ghost");
      olga = await login(srv.url, srv.store, "olga", "d-olga000001");
    });
    after(async () => {
      await srv.close();
    });

    test("a critical alert and an incident with it, once", async () => {
      const r = await call<{ id: number; duplicate: boolean; incident?: string }>(
        srv.url,
        laptop,
        "POST",
        "/v1/kt/reports",
        { kind: "not_mine", subject: ghost.device, detail: "I have one laptop only" },
      );
      assert.equal(r.status, 202, r.text);
      assert.equal(r.json.duplicate, false);
      assert.ok(r.json.incident?.startsWith("inc-"));
      const alerts = await call<{ alerts: AlertRow[] }>(srv.url, olga, "GET", "/v1/alerts?severity=critical");
      const a = alerts.json.alerts.find((x) => x.id === r.json.id)!;
      assert.equal(a.rule, "device-not-mine");
      assert.equal(a.severity, "critical");
      assert.equal(a.actor, "alice");
      assert.match(a.reason, new RegExp(`device ${ghost.device} \\(listed as alice's\\) is not theirs`));
      assert.match(a.reason, /I have one laptop only/);
      const inc = await call<{ alerts: number[]; createdBy: string; title: string }>(
        srv.url,
        olga,
        "GET",
        `/v1/incidents/${r.json.incident!}`,
      );
      assert.equal(inc.status, 200, inc.text);
      assert.deepEqual(inc.json.alerts, [r.json.id]);
      assert.equal(inc.json.createdBy, "valise");
      assert.match(inc.json.title, /reported as not theirs by alice/);
      const again = await call<{ id: number; duplicate: boolean; incident?: string }>(
        srv.url,
        laptop,
        "POST",
        "/v1/kt/reports",
        { kind: "not_mine", subject: ghost.device, detail: "I have one laptop only" },
      );
      assert.equal(again.status, 202);
      assert.deepEqual([again.json.id, again.json.duplicate, again.json.incident], [r.json.id, true, undefined]);
      const incidents = await call<{ incidents: unknown[] }>(srv.url, olga, "GET", "/v1/incidents");
      assert.equal(incidents.json.incidents.length, 1);
    });

    test("the reporting device itself, or not a device id: refused; other reports stay high", async () => {
      for (const subject of [laptop.device, "bob"]) {
        const r = await call(srv.url, laptop, "POST", "/v1/kt/reports", { kind: "not_mine", subject, detail: "" });
        assert.equal(r.status, 400, `${subject}: ${r.text}`);
      }
      const k = await call<{ id: number }>(srv.url, laptop, "POST", "/v1/kt/reports", {
        kind: "unknown_device",
        subject: "alice",
        detail: "d-alice0ghost not in the log",
      });
      assert.equal(k.status, 202);
      const alerts = await call<{ alerts: AlertRow[] }>(srv.url, olga, "GET", "/v1/alerts");
      const a = alerts.json.alerts.find((x) => x.id === k.json.id)!;
      assert.deepEqual([a.rule, a.severity], ["kt-report", "high"]);
    });
  });
}
