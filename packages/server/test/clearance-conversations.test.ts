/**
 * Clearances and conversation membership (docs/cables-documents-api.md "Clearances", "Conversation kind link"), on
 * every database: only officers set clearances; a downgrade makes the user's devices pending removal in every
 * conversation the new clearance no longer covers before the PUT answers — the next application message there is 409
 * `pending_removal` and those devices get 403 `not_cleared` on the conversation (left out of their listing) — until
 * a member commits the Remove; the same through the store (admin CLI); `link` conversations join two units and refuse
 * devices of users in neither; `unit` channels refuse non-members. Messages are JSON routing headers (jsonMls).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, randomId } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, commit, jsonMls, login, sendMessage, type Session } from "./helpers/content.js";

for (const kind of DATABASE_KINDS) {
  describe(`clearances and conversations on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let alice: Session; // HQ/ASIA-1, SECRET/ASIA
    let erin: Session; // HQ/ASIA-1, SECRET/ASIA (to be downgraded)
    let erin2: Session;
    let carol: Session; // EMB/BEIJING, SECRET/ASIA
    let dave: Session; // HQ/EU, SECRET/ASIA
    let bob: Session; // HQ/ASIA-1, SECRET
    let olga: Session; // officer
    let admin: Session; // administrator (not an officer)
    let n = 0;
    const idem = () => `idem-${kind}-${++n}-${Date.now()}`;

    before(async () => {
      srv = await startTestServer(kind, { mls: jsonMls });
      url = srv.url;
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUnit("EMB/BEIJING", "SECRET/ASIA");
      await d.addUnit("HQ/EU", "SECRET/ASIA");
      await d.addUnit("HQ/SEC", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "erin", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "carol", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "dave", units: ["HQ/EU"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      await d.addUser({ handle: "root", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "admin" });
      alice = await login(url, srv.store, "alice", "d-alice00001");
      erin = await login(url, srv.store, "erin", "d-erin000001");
      erin2 = await login(url, srv.store, "erin", "d-erin000002");
      carol = await login(url, srv.store, "carol", "d-carol00001");
      dave = await login(url, srv.store, "dave", "d-dave000001");
      bob = await login(url, srv.store, "bob", "d-bob0000001");
      olga = await login(url, srv.store, "olga", "d-olga000001");
      admin = await login(url, srv.store, "root", "d-root000001");
    });
    after(async () => {
      await srv.close();
    });

    /** A conversation of alice's with the given devices added (epoch 1 afterwards). */
    async function conversation(label: string, devices: string[], body: Record<string, unknown> = { kind: "group" }) {
      const id = randomId("c");
      const c = await call(url, alice, "POST", "/v1/conversations", { id, label, ...body });
      assert.equal(c.status, 201, c.text);
      const add = await commit(url, alice, id, 0, { added: devices }, idem());
      assert.equal(add.status, 201, add.text);
      return id;
    }

    test("only officers set clearances; the change is audited with the officer as actor", async () => {
      for (const who of [alice, bob, admin]) {
        const r = await call(url, who, "PUT", "/v1/users/bob/clearance", { clearance: "SECRET/ASIA" });
        assert.equal(r.status, 403, who.handle);
        assert.equal(r.json.code, "forbidden");
      }
      assert.equal((await srv.store.directory.getUser("bob"))!.clearance, "SECRET");
      const missing = await call(url, olga, "PUT", "/v1/users/nobody/clearance", { clearance: "SECRET" });
      assert.equal(missing.status, 404);
      const badLabel = await call(url, olga, "PUT", "/v1/users/bob/clearance", { clearance: "TOPSECRET" });
      assert.equal(badLabel.status, 400);
      const ok = await call(url, olga, "PUT", "/v1/users/bob/clearance", { clearance: "SECRET/NATO,ASIA" });
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(ok.json, { handle: "bob", clearance: "SECRET/ASIA,NATO", pendingRemovals: [] });
      const back = await call(url, olga, "PUT", "/v1/users/bob/clearance", { clearance: "SECRET" });
      assert.equal(back.status, 200);
      const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
      const ev = raw.map((x) => parseAuditEvent(x)).flatMap((p) => (p.ok ? [p.event] : []));
      const sets = ev.filter((e) => e.action === "directory.clearance.set" && e.object === "bob");
      assert.deepEqual(
        sets.map((e) => [e.actor, e.device, e.outcome]),
        [
          ["alice", alice.device, "denied"],
          ["bob", bob.device, "denied"],
          ["root", admin.device, "denied"],
          ["olga", olga.device, "ok"],
          ["olga", olga.device, "ok"],
        ],
      );
    });

    test("a downgrade makes the user's devices pending removal before the PUT answers; removal clears it", async () => {
      const asia = await conversation("SECRET/ASIA", [erin.device, erin2.device]);
      const plain = await conversation("SECRET", [erin.device]);
      assert.equal((await sendMessage(url, alice, asia, 1, idem())).status, 201);
      assert.equal((await sendMessage(url, erin, asia, 1, idem())).status, 201);

      const put = await call<{ pendingRemovals: { conversation: string; devices: string[] }[] }>(
        url,
        olga,
        "PUT",
        "/v1/users/erin/clearance",
        { clearance: "SECRET" },
      );
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(put.json.pendingRemovals, [{ conversation: asia, devices: [erin.device, erin2.device].sort() }]);

      // Members may not send until the Remove is committed; the downgraded devices read nothing more of it.
      const refused = await sendMessage(url, alice, asia, 1, idem());
      assert.equal(refused.status, 409, refused.text);
      assert.equal(refused.json.code, "pending_removal");
      assert.deepEqual(refused.json.devices, [erin.device, erin2.device].sort());
      for (const dev of [erin, erin2]) {
        for (const path of [
          `/v1/conversations/${asia}/messages?after=0`,
          `/v1/conversations/${asia}/group-info`,
          `/v1/conversations/${asia}`,
        ]) {
          const r = await call(url, dev, "GET", path);
          assert.equal(r.status, 403, `${dev.device} ${path}: ${r.text}`);
          assert.equal(r.json.code, "not_cleared");
        }
        const own = await sendMessage(url, dev, asia, 1, idem());
        assert.equal(own.json.code, "not_cleared");
        const list = await call<{ conversations: { id: string }[] }>(url, dev, "GET", "/v1/conversations");
        assert.ok(!list.json.conversations.some((c) => c.id === asia), "left out of the listing");
      }
      // The SECRET conversation is unaffected.
      assert.equal((await sendMessage(url, alice, plain, 1, idem())).status, 201);
      assert.equal((await call(url, erin, "GET", `/v1/conversations/${plain}/messages?after=0`)).status, 200);
      const erinList = await call<{ conversations: { id: string }[] }>(url, erin, "GET", "/v1/conversations");
      assert.ok(erinList.json.conversations.some((c) => c.id === plain));
      // Re-adding a downgraded device is refused.
      const readd = await commit(url, alice, asia, 1, { added: [erin.device] }, idem());
      assert.equal(readd.status, 403);
      assert.equal(readd.json.code, "not_cleared");

      // Removing one device is not enough; removing both lets the conversation go on.
      assert.equal((await commit(url, alice, asia, 1, { removed: [erin.device] }, idem())).status, 201);
      const still = await sendMessage(url, alice, asia, 2, idem());
      assert.equal(still.status, 409);
      assert.deepEqual(still.json.devices, [erin2.device]);
      assert.equal((await commit(url, alice, asia, 2, { removed: [erin2.device] }, idem())).status, 201);
      assert.equal((await sendMessage(url, alice, asia, 3, idem())).status, 201);
      assert.equal((await call(url, erin, "GET", `/v1/conversations/${asia}/messages?after=0`)).status, 403);

      // Cleared again: no longer pending, and may be added back.
      const up = await call(url, olga, "PUT", "/v1/users/erin/clearance", { clearance: "SECRET/ASIA" });
      assert.deepEqual(up.json.pendingRemovals, []);
      assert.equal((await commit(url, alice, asia, 3, { added: [erin.device] }, idem())).status, 201);
      assert.equal((await sendMessage(url, erin, asia, 4, idem())).status, 201);
    });

    test("the same rule for a clearance changed through the store (admin CLI) and for a revoked device", async () => {
      await srv.store.directory.addUser({
        handle: "fred",
        units: ["HQ/ASIA-1"],
        clearance: "SECRET/ASIA",
        role: "user",
      });
      const fred = await login(url, srv.store, "fred", "d-fred000001");
      const conv = await conversation("CONFIDENTIAL/ASIA", [fred.device]);
      const r = await srv.store.directory.setClearance("fred", "CONFIDENTIAL");
      assert.deepEqual(r.pendingRemovals, [{ conversation: conv, devices: [fred.device] }]);
      assert.equal((await sendMessage(url, alice, conv, 1, idem())).json.code, "pending_removal");
      assert.equal((await call(url, fred, "GET", `/v1/conversations/${conv}/messages`)).json.code, "not_cleared");

      await srv.store.directory.addUser({ handle: "gus", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      const gus = await login(url, srv.store, "gus", "d-gus0000001");
      const conv2 = await conversation("SECRET", [gus.device]);
      assert.equal((await sendMessage(url, alice, conv2, 1, idem())).status, 201);
      await srv.store.directory.revokeDevice(gus.device);
      const p = await sendMessage(url, alice, conv2, 1, idem());
      assert.equal(p.json.code, "pending_removal");
      assert.deepEqual(p.json.devices, [gus.device]);
    });

    test("link conversations join two units; unit channels their members; others are refused", async () => {
      const link = randomId("c");
      const bad: [Session, Record<string, unknown>, number, string][] = [
        [alice, { unit: "EMB/BEIJING" }, 400, "bad_request"],
        [alice, { unit: "EMB/BEIJING", fromUnit: "HQ/EU" }, 403, "forbidden"],
        [alice, { unit: "HQ/ASIA-1", fromUnit: "HQ/ASIA-1" }, 400, "bad_request"],
        [alice, { unit: "EMB/NOWHERE", fromUnit: "HQ/ASIA-1" }, 404, "not_found"],
      ];
      for (const [who, over, status, code] of bad) {
        const r = await call(url, who, "POST", "/v1/conversations", {
          id: link,
          kind: "link",
          label: "SECRET/ASIA",
          ...over,
        });
        assert.equal(r.status, status, `${JSON.stringify(over)} ${r.text}`);
        assert.equal(r.json.code, code);
      }
      const made = await call(url, alice, "POST", "/v1/conversations", {
        id: link,
        kind: "link",
        label: "SECRET/ASIA",
        unit: "EMB/BEIJING",
        fromUnit: "HQ/ASIA-1",
      });
      assert.equal(made.status, 201, made.text);
      assert.equal(made.json.fromUnit, "HQ/ASIA-1");
      assert.equal(made.json.unit, "EMB/BEIJING");
      const davesAdd = await commit(url, alice, link, 0, { added: [dave.device] }, idem());
      assert.equal(davesAdd.status, 403);
      assert.equal(davesAdd.json.code, "forbidden");
      const bobsAdd = await commit(url, alice, link, 0, { added: [bob.device] }, idem());
      assert.equal(bobsAdd.status, 403);
      assert.equal(bobsAdd.json.code, "not_cleared");
      const ok = await commit(url, alice, link, 0, { added: [carol.device] }, idem());
      assert.equal(ok.status, 201, ok.text);
      const listed = await call<{ conversations: { id: string; fromUnit: string | null }[] }>(
        url,
        carol,
        "GET",
        "/v1/conversations",
      );
      assert.equal(listed.json.conversations.find((c) => c.id === link)?.fromUnit, "HQ/ASIA-1");

      const unit = await conversation("SECRET", [], { kind: "unit", unit: "HQ/ASIA-1" });
      const out = await commit(url, alice, unit, 1, { added: [carol.device] }, idem());
      assert.equal(out.status, 403);
      assert.equal(out.json.code, "forbidden");
      assert.equal((await commit(url, alice, unit, 1, { added: [bob.device] }, idem())).status, 201);
      const group = await call(url, alice, "GET", `/v1/conversations/${unit}`);
      assert.equal(group.json.fromUnit, null);
    });
  });
}
