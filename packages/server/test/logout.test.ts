/**
 * Issue 15: sign out ends the session on the server (POST /v1/auth/logout): 204, audited as `logout` (actor the
 * user, the device), and the token is refused from then on (401 on every route, the logout itself included: a replay
 * is not audited as a second sign-out). Only that session ends: the user's other device keeps its own. No session:
 * 401. On every database.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, login, type Session } from "./helpers/content.js";

for (const kind of DATABASE_KINDS) {
  describe(`sign out on ${kind}`, () => {
    let srv: TestServer;
    let laptop: Session;
    let phone: Session;

    async function auditEvents(): Promise<AuditEvent[]> {
      const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
      return raw.map((x) => parseAuditEvent(x)).flatMap((p) => (p.ok ? [p.event] : []));
    }

    before(async () => {
      srv = await startTestServer(kind, {});
      await srv.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await srv.store.directory.addUser({
        handle: "alice",
        units: ["HQ/ASIA-1"],
        clearance: "SECRET/ASIA",
        role: "user",
      });
      laptop = await login(srv.url, srv.store, "alice", "d-alice00001");
      phone = await login(srv.url, srv.store, "alice", "d-alice00002");
    });
    after(async () => {
      await srv.close();
    });

    test("the session ends on the server: audited, the old token refused, the other device's session kept", async () => {
      assert.equal((await call(srv.url, laptop, "GET", "/v1/me")).status, 200);
      assert.equal((await call(srv.url, null, "POST", "/v1/auth/logout", {})).status, 401, "no session");
      const from = await srv.store.audit.size();
      const r = await call(srv.url, laptop, "POST", "/v1/auth/logout", {});
      assert.equal(r.status, 204, r.text);
      assert.equal((await call(srv.url, laptop, "GET", "/v1/me")).status, 401, "the old token still works");
      assert.equal((await call(srv.url, laptop, "GET", "/v1/conversations")).status, 401);
      assert.equal((await call(srv.url, laptop, "POST", "/v1/auth/logout", {})).status, 401, "a replayed logout");
      assert.equal((await call(srv.url, phone, "GET", "/v1/me")).status, 200, "the other device was signed out");
      const ev = (await auditEvents()).slice(from).filter((e) => e.action === "logout");
      assert.deepEqual(
        ev.map((e) => [e.actor, e.device, e.object, e.outcome]),
        [["alice", laptop.device, "alice", "ok"]],
      );
    });
  });
}
