/**
 * Issue 15: a user revokes their own lost device (POST /v1/devices/:id/revoke) from another of their devices: a
 * device.revoke entry in the directory log, the device's sessions gone (its token is refused at once), audited as
 * directory.device.revoke with the user as actor. Refused: another user's device (404), the calling device itself
 * (403: a thief holding one device cannot lock the owner out by revoking it from itself — but see the doc comment of
 * the route), an already revoked or unknown device (404), a malformed id (400), no session (401); the 403 and 404 refusals
 * of an authenticated caller are audited as denied.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, login, type Session } from "./helpers/content.js";

for (const kind of DATABASE_KINDS) {
  describe(`own device revocation on ${kind}`, () => {
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

    test("refused: another user's device, itself, malformed, unknown, no session (denials audited)", async () => {
      const from = await srv.store.audit.size();
      assert.equal((await call(url, bob, "POST", `/v1/devices/${phone.device}/revoke`, {})).status, 404);
      assert.equal((await call(url, phone, "POST", `/v1/devices/${phone.device}/revoke`, {})).status, 403);
      assert.equal((await call(url, laptop, "POST", `/v1/devices/not-a-device/revoke`, {})).status, 400);
      assert.equal((await call(url, laptop, "POST", `/v1/devices/d-nobody00001/revoke`, {})).status, 404);
      assert.equal((await call(url, null, "POST", `/v1/devices/${phone.device}/revoke`, {})).status, 401);
      assert.equal((await srv.store.directory.getDevice(phone.device))?.revokedAt, null, "a refusal revoked it");
      const ev = (await auditEvents()).slice(from).filter((e) => e.action === "directory.device.revoke");
      assert.deepEqual(
        ev.map((e) => [e.actor, e.target_device, e.outcome]),
        [
          ["bob", phone.device, "denied"],
          ["alice", phone.device, "denied"],
          ["alice", "d-nobody00001", "denied"],
        ],
      );
    });

    test("the owner revokes the lost phone from the laptop: logged, audited, its session refused", async () => {
      const logBefore = await srv.store.directory.log.size();
      const from = await srv.store.audit.size();
      const r = await call(url, laptop, "POST", `/v1/devices/${phone.device}/revoke`, {});
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { device: phone.device, revoked: true });
      assert.notEqual((await srv.store.directory.getDevice(phone.device))?.revokedAt, null);
      assert.ok((await srv.store.directory.log.size()) > logBefore, "no directory log entry");
      const ev = (await auditEvents()).slice(from).filter((e) => e.action === "directory.device.revoke");
      assert.deepEqual(
        ev.map((e) => [e.actor, e.device, e.outcome]),
        [["alice", laptop.device, "ok"]],
      );
      assert.equal((await call(url, phone, "GET", "/v1/me")).status, 401, "the revoked phone's session still works");
      assert.equal((await call(url, laptop, "POST", `/v1/devices/${phone.device}/revoke`, {})).status, 404);
    });
  });
}
