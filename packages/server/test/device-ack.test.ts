/**
 * Issue 16: a user acknowledges their own device (POST /v1/devices/:id/ack), audited as directory.device.ack with the
 * acknowledging device and the acknowledged one; another user's device, an unknown or malformed id, a revoked device
 * and an unauthenticated call are refused (the refusals of an authenticated caller audited as denied). The detection
 * engine, fed the audit log, does not take an acknowledged new device on a new network for an intruder's.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, login, type Session } from "./helpers/content.js";

for (const kind of DATABASE_KINDS) {
  describe(`device acknowledgement on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let laptop: Session;
    let phone: Session;
    let bob: Session;

    async function auditEvents(): Promise<AuditEvent[]> {
      const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
      return raw.map((x) => parseAuditEvent(x)).flatMap((p) => (p.ok ? [p.event] : []));
    }

    before(async () => {
      srv = await startTestServer(kind, {});
      url = srv.url;
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      laptop = await login(url, srv.store, "alice", "d-alice00001");
      phone = await login(url, srv.store, "alice", "d-alice00002");
      bob = await login(url, srv.store, "bob", "d-bob0000001");
    });
    after(async () => {
      await srv.close();
    });

    test("the owner acknowledges their new phone from their laptop: audited directory.device.ack", async () => {
      const from = await srv.store.audit.size();
      const r = await call<{ device: string; acknowledged: boolean; from: string }>(
        url,
        laptop,
        "POST",
        `/v1/devices/${phone.device}/ack`,
        {},
      );
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { device: phone.device, acknowledged: true, from: laptop.device });
      const ev = (await auditEvents()).slice(from);
      assert.deepEqual(
        ev.map((e) => [e.action, e.actor, e.device, e.object, e.target_device, e.unit, e.outcome]),
        [["directory.device.ack", "alice", laptop.device, "alice", phone.device, "HQ/ASIA-1", "ok"]],
      );
    });

    test("another user's device, an unknown or malformed id, a revoked device: refused and audited as denied", async () => {
      const from = await srv.store.audit.size();
      assert.equal((await call(url, bob, "POST", `/v1/devices/${phone.device}/ack`, {})).status, 404);
      assert.equal((await call(url, laptop, "POST", `/v1/devices/d-nobody00001/ack`, {})).status, 404);
      assert.equal((await call(url, laptop, "POST", `/v1/devices/not-a-device/ack`, {})).status, 400);
      await srv.store.directory.revokeDevice(phone.device);
      assert.equal((await call(url, laptop, "POST", `/v1/devices/${phone.device}/ack`, {})).status, 404);
      assert.equal((await call(url, null, "POST", `/v1/devices/${laptop.device}/ack`, {})).status, 401);
      const ev = (await auditEvents()).slice(from).filter((e) => e.action === "directory.device.ack");
      assert.deepEqual(
        ev.map((e) => [e.actor, e.target_device, e.outcome]),
        [
          ["bob", phone.device, "denied"],
          ["alice", "d-nobody00001", "denied"],
          ["alice", phone.device, "denied"],
        ],
      );
    });
  });
}
