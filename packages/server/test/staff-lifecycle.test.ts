/**
 * Staff lifecycle (issue 12), on every database: each change (unit and user creation, membership add/remove/move,
 * role, disable/enable, unit max-label) writes its directory log entry and its audit event (actor = who made it);
 * the API routes refuse non-admins / non-officers (403, audited as denied) and bad input (400); nobody changes their
 * own role or clearance; a disabled user's devices are revoked in the log, their sessions and logins refused, and
 * enabling them leaves the devices revoked; moving a user makes their devices pending removal in the old unit's
 * channel and link conversations; the officer change feed and a user's history; key-transparency reports from
 * clients become officer alerts, deduplicated within the hour.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { parseAuditEvent, parseDirectoryEntry, randomId, type AuditEvent, type DirectoryEntry } from "@valise/core";
import WebSocket from "ws";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { normalizeEnrollmentCode, sha256Hex } from "../src/storage/secrets.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, commit, jsonMls, login, sendMessage, type Session } from "./helpers/content.js";

const enc = encodeURIComponent;

for (const kind of DATABASE_KINDS) {
  describe(`staff lifecycle on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let alice: Session; // HQ/ASIA-1 user
    let ksvoboda: Session; // HQ/ASIA-1, to be posted to EMB/TOKYO
    let carol: Session; // EMB/BEIJING
    let olga: Session; // officer
    let root: Session; // admin
    let eve: Session; // EMB/TOKYO, to be offboarded
    let eveKey: KeyObject;
    let eve2: Session;
    let n = 0;
    const idem = () => `idem-${kind}-${++n}-${Date.now()}`;

    async function auditEvents(): Promise<AuditEvent[]> {
      const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
      return raw.map((x) => parseAuditEvent(x)).flatMap((p) => (p.ok ? [p.event] : []));
    }
    async function logEntries(): Promise<DirectoryEntry[]> {
      const log = srv.store.directory.log;
      const raw = await log.entries(0, await log.size());
      return raw.map((x) => {
        const p = parseDirectoryEntry(x);
        assert.ok(p.ok);
        return p.entry;
      });
    }
    /** Log entries appended while `fn` runs. */
    async function appended<T>(fn: () => Promise<T>): Promise<{ result: T; entries: DirectoryEntry[]; from: number }> {
      const from = await srv.store.directory.log.size();
      const result = await fn();
      return { result, entries: (await logEntries()).slice(from), from };
    }
    /** Audit events appended while `fn` runs. */
    async function audited<T>(fn: () => Promise<T>): Promise<{ result: T; events: AuditEvent[] }> {
      const from = await srv.store.audit.size();
      const result = await fn();
      return { result, events: (await auditEvents()).slice(from) };
    }
    const strip = (e: DirectoryEntry) => {
      const { time: _t, ...rest } = e;
      return rest;
    };
    const who = (e: AuditEvent) => [e.action, e.actor, e.object, e.unit, e.target_device, e.outcome];

    /** Challenge/response login with a kept key (to try again after a change). */
    async function relogin(device: string, key: KeyObject): Promise<number> {
      const ch = await call<{ challenge: string }>(url, null, "POST", "/v1/auth/challenge", { device });
      const signature = sign(null, Buffer.from(`valise-login:${ch.json.challenge}`), key).toString("base64");
      const s = await call(url, null, "POST", "/v1/auth/session", { device, challenge: ch.json.challenge, signature });
      return s.status;
    }

    before(async () => {
      srv = await startTestServer(kind, { mls: jsonMls });
      url = srv.url;
      const d = srv.store.directory;
      for (const u of ["HQ/ASIA-1", "EMB/BEIJING", "EMB/TOKYO", "HQ/SEC"]) await d.addUnit(u, "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "ksvoboda", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "carol", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      await d.addUser({ handle: "root", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "admin" });
      await d.addUser({ handle: "eve", units: ["EMB/TOKYO"], clearance: "SECRET/ASIA", role: "user" });
      alice = await login(url, srv.store, "alice", "d-alice00001");
      ksvoboda = await login(url, srv.store, "ksvoboda", "d-ksvob00001");
      carol = await login(url, srv.store, "carol", "d-carol00001");
      olga = await login(url, srv.store, "olga", "d-olga000001");
      root = await login(url, srv.store, "root", "d-root000001");
      eve2 = await login(url, srv.store, "eve", "d-eve0000002");
      // eve's first device keeps its key, to try logging in again once she is disabled.
      const kp = generateKeyPairSync("ed25519");
      eveKey = kp.privateKey;
      const { enrollmentCode } = await d.newEnrollmentCode("eve");
      await d.redeemEnrollment(
        enrollmentCode,
        {
          id: "d-eve0000001",
          name: "t",
          signaturePublicKey: new Uint8Array(kp.publicKey.export({ format: "der", type: "spki" }).subarray(12)),
        },
        [],
        () => {},
      );
      const token = await (async () => {
        const ch = await call<{ challenge: string }>(url, null, "POST", "/v1/auth/challenge", {
          device: "d-eve0000001",
        });
        const signature = sign(null, Buffer.from(`valise-login:${ch.json.challenge}`), eveKey).toString("base64");
        const r = await call<{ token: string }>(url, null, "POST", "/v1/auth/session", {
          device: "d-eve0000001",
          challenge: ch.json.challenge,
          signature,
        });
        assert.equal(r.status, 201, r.text);
        return r.json.token;
      })();
      eve = { handle: "eve", device: "d-eve0000001", token };
    });
    after(async () => {
      await srv.close();
    });

    test("creating units and users is logged and audited (admin CLI as actor)", async () => {
      const events = await auditEvents();
      const units = events.filter((e) => e.action === "directory.unit.add").map(who);
      assert.deepEqual(units, [
        ["directory.unit.add", "admin-cli", "HQ/ASIA-1", "HQ/ASIA-1", null, "ok"],
        ["directory.unit.add", "admin-cli", "EMB/BEIJING", "EMB/BEIJING", null, "ok"],
        ["directory.unit.add", "admin-cli", "EMB/TOKYO", "EMB/TOKYO", null, "ok"],
        ["directory.unit.add", "admin-cli", "HQ/SEC", "HQ/SEC", null, "ok"],
      ]);
      const users = events.filter((e) => e.action === "directory.user.add").map(who);
      assert.deepEqual(users, [
        ["directory.user.add", "admin-cli", "alice", "HQ/ASIA-1", null, "ok"],
        ["directory.user.add", "admin-cli", "ksvoboda", "HQ/ASIA-1", null, "ok"],
        ["directory.user.add", "admin-cli", "carol", "EMB/BEIJING", null, "ok"],
        ["directory.user.add", "admin-cli", "olga", "HQ/SEC", null, "ok"],
        ["directory.user.add", "admin-cli", "root", "HQ/SEC", null, "ok"],
        ["directory.user.add", "admin-cli", "eve", "EMB/TOKYO", null, "ok"],
      ]);
      // A failed creation writes neither.
      const { events: none } = await audited(() =>
        assert.rejects(srv.store.directory.addUser({ handle: "alice", units: [], clearance: "SECRET", role: "user" })),
      );
      assert.deepEqual(none, []);
    });

    test("lifecycle routes refuse those without the role (403, audited) and bad input (400)", async () => {
      const adminOnly: [string, string, unknown?][] = [
        ["POST", `/v1/units/${enc("EMB/TOKYO")}/members`, { handle: "alice" }],
        ["DELETE", `/v1/units/${enc("HQ/ASIA-1")}/members/alice`],
        ["POST", "/v1/users/alice/move", { from: "HQ/ASIA-1", to: "EMB/TOKYO" }],
        ["PUT", "/v1/users/alice/role", { role: "admin" }],
        ["POST", "/v1/users/alice/enable"],
        ["PUT", `/v1/units/${enc("HQ/ASIA-1")}/max-label`, { maxLabel: "SECRET" }],
      ];
      const staff: [string, string, unknown?][] = [
        ["GET", "/v1/users"],
        ["GET", "/v1/users/alice/history"],
        ["GET", `/v1/units/${enc("HQ/ASIA-1")}/members`],
        ["GET", "/v1/directory/changes"],
        ["POST", "/v1/users/carol/disable"],
      ];
      const before = await srv.store.directory.log.size();
      const { events } = await audited(async () => {
        for (const [m, p, b] of [...adminOnly, ...staff]) {
          const r = await call(url, alice, m, p, b);
          assert.equal(r.status, 403, `${m} ${p}: ${r.text}`);
          assert.equal(r.json.code, "forbidden");
        }
        for (const [m, p, b] of adminOnly) {
          const r = await call(url, olga, m, p, b);
          assert.equal(r.status, 403, `officer ${m} ${p}: ${r.text}`);
        }
        for (const [m, p, b] of [...adminOnly, ...staff]) {
          const r = await call(url, null, m, p, b);
          assert.equal(r.status, 401, `anonymous ${m} ${p}`);
        }
      });
      assert.equal(await srv.store.directory.log.size(), before, "nothing was logged");
      const denied = events.filter((e) => e.outcome === "denied");
      assert.equal(denied.length, adminOnly.length * 2 + staff.length);
      assert.ok(denied.every((e) => e.actor === "alice" || e.actor === "olga"));
      assert.deepEqual(
        denied.filter((e) => e.actor === "olga").map((e) => [e.action, e.object, e.unit]),
        [
          ["directory.member.add", "alice", "EMB/TOKYO"],
          ["directory.member.remove", "alice", "HQ/ASIA-1"],
          ["directory.member.remove", "alice", "HQ/ASIA-1"],
          ["directory.role.set", "alice", null],
          ["directory.user.enable", "alice", null],
          ["directory.unit.label", "HQ/ASIA-1", "HQ/ASIA-1"],
        ],
      );

      const bad: [string, string, unknown, number, string?][] = [
        ["PUT", "/v1/users/alice/role", { role: "emperor" }, 400],
        ["PUT", "/v1/users/alice/role", { role: "user", extra: 1 }, 400],
        ["PUT", "/v1/users/alice/role", {}, 400],
        ["PUT", "/v1/users/Not_A_Handle/role", { role: "user" }, 400],
        ["PUT", "/v1/users/nobody/role", { role: "user" }, 404],
        ["POST", `/v1/units/${enc("hq/lower")}/members`, { handle: "alice" }, 400],
        ["POST", `/v1/units/${enc("HQ/NOWHERE")}/members`, { handle: "alice" }, 404],
        ["POST", `/v1/units/${enc("HQ/ASIA-1")}/members`, { handle: "alice" }, 409],
        ["POST", `/v1/units/${enc("HQ/ASIA-1")}/members`, { handle: 5 }, 400],
        ["DELETE", `/v1/units/${enc("EMB/BEIJING")}/members/alice`, undefined, 404],
        ["POST", "/v1/users/alice/move", { from: "HQ/ASIA-1", to: "HQ/ASIA-1" }, 400],
        ["POST", "/v1/users/alice/move", { from: "HQ/ASIA-1" }, 400],
        ["PUT", `/v1/units/${enc("HQ/ASIA-1")}/max-label`, { maxLabel: "TOPSECRET" }, 400],
        ["POST", "/v1/users/alice/enable", undefined, 409],
        ["GET", "/v1/directory/changes?limit=5000", undefined, 400],
        ["GET", "/v1/directory/changes?after=abc", undefined, 400],
        ["GET", "/v1/directory/changes?since=1", undefined, 400],
        ["GET", `/v1/users?unit=${enc("lower/case")}`, undefined, 400],
        ["GET", "/v1/users/nobody/history", undefined, 404],
      ];
      for (const [m, p, b, status] of bad) {
        const r = await call(url, root, m, p, b);
        assert.equal(r.status, status, `${m} ${p} ${JSON.stringify(b)}: ${r.text}`);
        assert.equal(typeof r.json.code, "string");
      }
      assert.equal(await srv.store.directory.log.size(), before, "nothing was logged");
    });

    test("nobody raises (or changes) their own role or clearance, or disables themselves", async () => {
      const { events } = await audited(async () => {
        const role = await call(url, root, "PUT", "/v1/users/root/role", { role: "officer" });
        assert.equal(role.status, 403, role.text);
        const clearance = await call(url, olga, "PUT", "/v1/users/olga/clearance", { clearance: "SECRET/ASIA,NATO" });
        assert.equal(clearance.status, 403, clearance.text);
        assert.equal(clearance.json.code, "forbidden");
        const disable = await call(url, olga, "POST", "/v1/users/olga/disable");
        assert.equal(disable.status, 403);
      });
      assert.deepEqual(
        events.map((e) => [e.action, e.actor, e.object, e.outcome]),
        [
          ["directory.role.set", "root", "root", "denied"],
          ["directory.clearance.set", "olga", "olga", "denied"],
          ["directory.user.disable", "olga", "olga", "denied"],
        ],
      );
      assert.equal((await srv.store.directory.getUser("root"))!.role, "admin");
      assert.equal((await srv.store.directory.getUser("olga"))!.clearance, "SECRET/ASIA");
      assert.equal(await srv.store.directory.isDisabled("olga"), false);
    });

    test("membership add and remove: log entry, audit event, log indices in the user answer", async () => {
      const add = await appended(() =>
        audited(() => call(url, root, "POST", `/v1/units/${enc("EMB/TOKYO")}/members`, { handle: "alice" })),
      );
      assert.equal(add.result.result.status, 201, add.result.result.text);
      assert.deepEqual(add.result.result.json, { handle: "alice", unit: "EMB/TOKYO" });
      assert.deepEqual(add.entries.map(strip), [{ v: 1, type: "member.add", user: "alice", unit: "EMB/TOKYO" }]);
      assert.deepEqual(add.result.events.map(who), [
        ["directory.member.add", "root", "alice", "EMB/TOKYO", null, "ok"],
      ]);
      assert.equal(add.result.events[0]!.device, root.device);
      const u = await call<{
        units: string[];
        logIndex: number;
        memberLogIndices: Record<string, number>;
        roleLogIndex: number;
        stateLogIndex: number;
        disabled: boolean;
      }>(url, carol, "GET", "/v1/users/alice");
      assert.deepEqual(u.json.units, ["EMB/TOKYO", "HQ/ASIA-1"]);
      assert.deepEqual(u.json.memberLogIndices, { "EMB/TOKYO": add.from, "HQ/ASIA-1": u.json.logIndex });
      assert.equal(u.json.roleLogIndex, u.json.logIndex);
      assert.equal(u.json.stateLogIndex, u.json.logIndex);
      assert.equal(u.json.disabled, false);
      const members = await call<{ members: string[] }>(url, carol, "GET", `/v1/unit-members?unit=${enc("EMB/TOKYO")}`);
      assert.deepEqual(members.json.members, ["alice", "eve"]);

      const rm = await appended(() =>
        audited(() => call(url, root, "DELETE", `/v1/units/${enc("EMB/TOKYO")}/members/alice`)),
      );
      assert.equal(rm.result.result.status, 200, rm.result.result.text);
      assert.deepEqual(rm.entries.map(strip), [{ v: 1, type: "member.remove", user: "alice", unit: "EMB/TOKYO" }]);
      assert.deepEqual(rm.result.events.map(who), [
        ["directory.member.remove", "root", "alice", "EMB/TOKYO", null, "ok"],
      ]);
      assert.deepEqual((await srv.store.directory.getUser("alice"))!.units, ["HQ/ASIA-1"]);
      // The removal is the latest fact about that membership.
      const refs = await srv.store.directory.log.refs(["member/alice/EMB/TOKYO"]);
      assert.equal(refs.get("member/alice/EMB/TOKYO"), rm.from);
    });

    test("moving a user: remove + add in one change, pending removals in the old unit's conversations", async () => {
      // alice's HQ/ASIA-1 channel, the HQ/ASIA-1 → EMB/BEIJING link, and a plain group, each holding ksvoboda.
      const make = async (body: Record<string, unknown>, devices: string[]) => {
        const id = randomId("c");
        const c = await call(url, alice, "POST", "/v1/conversations", { id, label: "SECRET/ASIA", ...body });
        assert.equal(c.status, 201, c.text);
        const a = await commit(url, alice, id, 0, { added: devices }, idem());
        assert.equal(a.status, 201, a.text);
        return id;
      };
      const channel = await make({ kind: "unit", unit: "HQ/ASIA-1" }, [ksvoboda.device]);
      const link = await make({ kind: "link", unit: "EMB/BEIJING", fromUnit: "HQ/ASIA-1" }, [
        ksvoboda.device,
        carol.device,
      ]);
      const group = await make({ kind: "group" }, [ksvoboda.device]);
      assert.equal((await sendMessage(url, alice, channel, 1, idem())).status, 201);

      const mv = await appended(() =>
        audited(() =>
          call<{ pendingRemovals: { conversation: string; devices: string[] }[] }>(
            url,
            root,
            "POST",
            "/v1/users/ksvoboda/move",
            { from: "HQ/ASIA-1", to: "EMB/TOKYO" },
          ),
        ),
      );
      const r = mv.result.result;
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(
        r.json.pendingRemovals,
        [
          { conversation: channel, devices: [ksvoboda.device] },
          { conversation: link, devices: [ksvoboda.device] },
        ].sort((a, b) => a.conversation.localeCompare(b.conversation)),
      );
      assert.deepEqual(mv.entries.map(strip), [
        { v: 1, type: "member.remove", user: "ksvoboda", unit: "HQ/ASIA-1" },
        { v: 1, type: "member.add", user: "ksvoboda", unit: "EMB/TOKYO" },
      ]);
      assert.deepEqual(mv.result.events.map(who), [
        ["directory.member.remove", "root", "ksvoboda", "HQ/ASIA-1", null, "ok"],
        ["directory.member.add", "root", "ksvoboda", "EMB/TOKYO", null, "ok"],
      ]);
      // Nothing new goes to the old unit's conversations until the Remove is committed; ksvoboda reads none of it.
      for (const conv of [channel, link]) {
        const refused = await sendMessage(url, alice, conv, 1, idem());
        assert.equal(refused.status, 409, refused.text);
        assert.equal(refused.json.code, "pending_removal");
        const read = await call(url, ksvoboda, "GET", `/v1/conversations/${conv}/messages?after=0`);
        assert.equal(read.status, 403, read.text);
      }
      assert.equal((await sendMessage(url, alice, group, 1, idem())).status, 201, "the group is not affected");
      const removed = await commit(url, alice, channel, 1, { removed: [ksvoboda.device] }, idem());
      assert.equal(removed.status, 201, removed.text);
      assert.equal((await sendMessage(url, alice, channel, 2, idem())).status, 201);
      // Posted back to HQ/ASIA-1: the link (still holding the device) serves it again.
      const back = await call(url, root, "POST", `/v1/units/${enc("HQ/ASIA-1")}/members`, { handle: "ksvoboda" });
      assert.equal(back.status, 201, back.text);
      assert.equal((await sendMessage(url, alice, link, 1, idem())).status, 201);
      assert.equal((await call(url, ksvoboda, "GET", `/v1/conversations/${link}/messages?after=0`)).status, 200);
    });

    test("a pending removal stays while either reason holds (clearance lowered and unit left, one restored)", async () => {
      const d = srv.store.directory;
      await d.addUser({ handle: "frank", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      const frank = await login(url, srv.store, "frank", "d-frank00001");
      const channel = randomId("c");
      const made = await call(url, alice, "POST", "/v1/conversations", {
        id: channel,
        label: "SECRET/ASIA",
        kind: "unit",
        unit: "HQ/ASIA-1",
      });
      assert.equal(made.status, 201, made.text);
      assert.equal((await commit(url, alice, channel, 0, { added: [frank.device] }, idem())).status, 201);
      const blocked = async () => (await srv.store.conversations.pendingRemovals(channel)).includes(frank.device);

      // Clearance lowered, then unit left; the clearance comes back: still not a member of the unit.
      await d.setClearance("frank", "SECRET");
      assert.equal(await blocked(), true);
      await d.removeMember("frank", "HQ/ASIA-1");
      await d.setClearance("frank", "SECRET/ASIA");
      assert.equal(await blocked(), true, "restoring the clearance does not lift the unit's removal");
      // Unit left, then clearance lowered; back in the unit: still not cleared.
      await d.setClearance("frank", "SECRET");
      await d.addMember("frank", "HQ/ASIA-1");
      assert.equal(await blocked(), true, "rejoining the unit does not lift the clearance's removal");
      await d.setClearance("frank", "SECRET/ASIA");
      assert.equal(await blocked(), false, "both reasons gone");
    });

    test("role set: user.role entry, directory.role.set audit, roleLogIndex; the same role writes nothing", async () => {
      const set = await appended(() =>
        audited(() => call(url, root, "PUT", "/v1/users/carol/role", { role: "archivist" })),
      );
      assert.equal(set.result.result.status, 200, set.result.result.text);
      assert.deepEqual(set.result.result.json, { handle: "carol", role: "archivist", changed: true });
      assert.deepEqual(set.entries.map(strip), [{ v: 1, type: "user.role", user: "carol", role: "archivist" }]);
      assert.deepEqual(set.result.events.map(who), [
        ["directory.role.set", "root", "carol", "EMB/BEIJING", null, "ok"],
      ]);
      const u = await call<{ role: string; roleLogIndex: number }>(url, alice, "GET", "/v1/users/carol");
      assert.equal(u.json.role, "archivist");
      assert.equal(u.json.roleLogIndex, set.from);
      const again = await appended(() => call(url, root, "PUT", "/v1/users/carol/role", { role: "archivist" }));
      assert.equal(again.result.json.changed, false);
      assert.deepEqual(again.entries, []);
      // Store path (admin CLI).
      const back = await appended(() => srv.store.directory.setRole("carol", "user"));
      assert.deepEqual(back.entries.map(strip), [{ v: 1, type: "user.role", user: "carol", role: "user" }]);
    });

    test("records archive and share window over the API: logged, audited, admins only, checked", async () => {
      const tokyo = `/v1/units/${enc("EMB/TOKYO")}`;
      // Only an archivist can be an archive.
      const notArchivist = await call(url, root, "POST", `${tokyo}/archives`, { handle: "carol" });
      assert.equal(notArchivist.status, 400, notArchivist.text);
      assert.match(notArchivist.text, /only an archivist can be an archive/);
      await srv.store.directory.setRole("carol", "archivist");
      assert.equal((await call(url, olga, "POST", `${tokyo}/archives`, { handle: "carol" })).status, 403);
      const set = await appended(() =>
        audited(() => call(url, root, "POST", `${tokyo}/archives`, { handle: "carol" })),
      );
      assert.equal(set.result.result.status, 201, set.result.result.text);
      assert.deepEqual(set.entries.map(strip), [{ v: 1, type: "archive.assign", user: "carol", unit: "EMB/TOKYO" }]);
      assert.deepEqual(set.result.events.map(who), [
        ["directory.archive.assign", "root", "carol", "EMB/TOKYO", null, "ok"],
      ]);
      const u = await call<{ units: string[]; archives: string[]; memberLogIndices: Record<string, number> }>(
        url,
        alice,
        "GET",
        "/v1/users/carol",
      );
      assert.deepEqual(u.json.units, ["EMB/BEIJING", "EMB/TOKYO"]);
      assert.deepEqual(u.json.archives, ["EMB/TOKYO"]);
      assert.equal(u.json.memberLogIndices["EMB/TOKYO"], set.from);
      assert.equal((await call(url, root, "POST", `${tokyo}/archives`, { handle: "carol" })).status, 409);
      // Not over a membership: already a member of Beijing.
      const member = await call(url, root, "POST", `/v1/units/${enc("EMB/BEIJING")}/archives`, { handle: "carol" });
      assert.equal(member.status, 409, member.text);
      // While an archive: no role change, no plain member removal.
      assert.equal((await call(url, root, "PUT", "/v1/users/carol/role", { role: "user" })).status, 409);
      assert.equal((await call(url, root, "DELETE", `${tokyo}/members/carol`)).status, 409);
      // The share window.
      const share = await appended(() => audited(() => call(url, root, "PUT", `${tokyo}/share`, { since: "86400" })));
      assert.deepEqual(share.result.result.json, { unit: "EMB/TOKYO", since: "86400", changed: true });
      assert.deepEqual(share.entries.map(strip), [{ v: 1, type: "unit.share", unit: "EMB/TOKYO", since: "86400" }]);
      assert.deepEqual(share.result.events.map(who), [
        ["directory.unit.share", "root", "EMB/TOKYO", "EMB/TOKYO", null, "ok"],
      ]);
      assert.equal((await call(url, root, "PUT", `${tokyo}/share`, { since: "0" })).status, 400);
      assert.equal((await call(url, alice, "PUT", `${tokyo}/share`, { since: "all" })).status, 403);
      assert.equal((await call(url, root, "PUT", `${tokyo}/share`, { since: "all" })).status, 200);
      // The assignment ends; the role can change again.
      const end = await appended(() => call(url, root, "DELETE", `${tokyo}/archives/carol`));
      assert.equal(end.result.status, 200, end.result.text);
      assert.deepEqual(end.entries.map(strip), [{ v: 1, type: "archive.remove", user: "carol", unit: "EMB/TOKYO" }]);
      assert.equal((await call(url, root, "DELETE", `${tokyo}/archives/carol`)).status, 404);
      await srv.store.directory.setRole("carol", "user");
    });

    test("disabling a user revokes every device in the log, refuses logins and sessions; enable keeps them revoked", async () => {
      const group = randomId("c");
      assert.equal(
        (await call(url, alice, "POST", "/v1/conversations", { id: group, label: "SECRET", kind: "group" })).status,
        201,
      );
      assert.equal((await commit(url, alice, group, 0, { added: [eve.device, eve2.device] }, idem())).status, 201);
      assert.equal((await call(url, eve, "GET", "/v1/me")).status, 200);

      const off = await appended(() =>
        audited(() =>
          call<{ revokedDevices: string[]; pendingRemovals: { conversation: string; devices: string[] }[] }>(
            url,
            olga,
            "POST",
            "/v1/users/eve/disable",
          ),
        ),
      );
      const r = off.result.result;
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.revokedDevices, [eve.device, eve2.device].sort());
      assert.deepEqual(r.json.pendingRemovals, [{ conversation: group, devices: [eve.device, eve2.device].sort() }]);
      assert.deepEqual(off.entries.map(strip), [
        { v: 1, type: "user.disable", user: "eve" },
        ...[eve.device, eve2.device].sort().map((device) => ({ v: 1, type: "device.revoke", user: "eve", device })),
      ]);
      assert.deepEqual(off.result.events.map(who), [
        ["directory.user.disable", "olga", "eve", "EMB/TOKYO", null, "ok"],
        ...[eve.device, eve2.device]
          .sort()
          .map((d) => ["directory.device.revoke", "olga", "eve", "EMB/TOKYO", d, "ok"]),
      ]);
      // Sessions are gone, logins refused, no enrollment code; she gets no keys as a unit member.
      assert.equal((await call(url, eve, "GET", "/v1/me")).status, 401);
      assert.equal(await relogin(eve.device, eveKey), 401);
      await assert.rejects(srv.store.directory.newEnrollmentCode("eve"), /disabled/);
      // A code row slipped into the database is refused too while she is disabled.
      await srv.store.handle.db
        .insertInto("enrollment_codes")
        .values({
          code_hash: sha256Hex(normalizeEnrollmentCode("FORGED-CODE-0001")),
          handle: "eve",
          expires_at: Date.now() + 3_600_000,
          used_at: null,
        })
        .execute();
      await assert.rejects(
        srv.store.directory.redeemEnrollment(
          "FORGED-CODE-0001",
          { id: "d-evil000001", name: "t", signaturePublicKey: new Uint8Array(32).fill(7) },
          [],
          () => {},
        ),
        /enrollment code is invalid/,
      );
      const members = await call<{ members: string[] }>(url, alice, "GET", `/v1/unit-members?unit=${enc("EMB/TOKYO")}`);
      assert.ok(!members.json.members.includes("eve"), JSON.stringify(members.json));
      const sent = await sendMessage(url, alice, group, 1, idem());
      assert.equal(sent.json.code, "pending_removal");
      const shown = await call<{ disabled: boolean; stateLogIndex: number; devices: { revokedAt: number | null }[] }>(
        url,
        alice,
        "GET",
        "/v1/users/eve",
      );
      assert.equal(shown.json.disabled, true);
      assert.equal(shown.json.stateLogIndex, off.from);
      assert.ok(shown.json.devices.every((d) => d.revokedAt !== null));
      const listed = await call<{ users: { handle: string; disabled: boolean; activeDevices: number }[] }>(
        url,
        olga,
        "GET",
        `/v1/users?unit=${enc("EMB/TOKYO")}`,
      );
      assert.deepEqual(
        listed.json.users.map((u) => [u.handle, u.disabled, u.activeDevices]),
        [
          ["eve", true, 0],
          ["ksvoboda", false, 1],
        ],
      );
      const twice = await call(url, root, "POST", "/v1/users/eve/disable");
      assert.equal(twice.status, 409);

      const on = await appended(() => audited(() => call(url, root, "POST", "/v1/users/eve/enable")));
      assert.equal(on.result.result.status, 200, on.result.result.text);
      assert.deepEqual(on.entries.map(strip), [{ v: 1, type: "user.enable", user: "eve" }]);
      assert.deepEqual(on.result.events.map(who), [["directory.user.enable", "root", "eve", "EMB/TOKYO", null, "ok"]]);
      assert.equal(await relogin(eve.device, eveKey), 401, "her devices stay revoked");
      // The same code row works once she is enabled: it was her state that refused it.
      await srv.store.directory.redeemEnrollment(
        "FORGED-CODE-0001",
        { id: "d-evil000001", name: "t", signaturePublicKey: new Uint8Array(32).fill(7) },
        [],
        () => {},
      );
      const fresh = await login(url, srv.store, "eve", "d-eve0000003");
      assert.equal((await call(url, fresh, "GET", "/v1/me")).status, 200, "a new enrollment brings her back");

      const history = await call<{ history: { index: number; time: string; type: string }[] }>(
        url,
        olga,
        "GET",
        "/v1/users/eve/history",
      );
      assert.deepEqual(
        history.json.history.map((h) => h.type),
        [
          "user.add",
          "device.add",
          "device.add",
          "user.disable",
          "device.revoke",
          "device.revoke",
          "user.enable",
          "device.add",
          "device.add",
        ],
      );
      assert.ok(history.json.history.every((h, i, a) => i === 0 || a[i - 1]!.index < h.index));
      assert.ok(history.json.history.every((h) => !Number.isNaN(Date.parse(h.time))));
    });

    test("unit max-label: unit.label entry and audit event; the unit list shows it", async () => {
      const set = await appended(() =>
        audited(() => call(url, root, "PUT", `/v1/units/${enc("EMB/TOKYO")}/max-label`, { maxLabel: "CONFIDENTIAL" })),
      );
      assert.equal(set.result.result.status, 200, set.result.result.text);
      assert.deepEqual(set.entries.map(strip), [
        { v: 1, type: "unit.label", unit: "EMB/TOKYO", maxLabel: "CONFIDENTIAL" },
      ]);
      assert.deepEqual(set.result.events.map(who), [
        ["directory.unit.label", "root", "EMB/TOKYO", "EMB/TOKYO", null, "ok"],
      ]);
      const units = await call<{ units: { name: string; maxLabel: string }[] }>(url, alice, "GET", "/v1/units");
      assert.equal(units.json.units.find((u) => u.name === "EMB/TOKYO")?.maxLabel, "CONFIDENTIAL");
    });

    test("officers follow every directory change with its index", async () => {
      const all = await call<{ size: number; changes: { index: number; type: string; entry: DirectoryEntry }[] }>(
        url,
        olga,
        "GET",
        "/v1/directory/changes?limit=1000",
      );
      assert.equal(all.status, 200, all.text);
      const size = await srv.store.directory.log.size();
      assert.equal(all.json.size, size);
      assert.deepEqual(
        all.json.changes.map((c) => c.index),
        [...Array(size).keys()],
      );
      assert.deepEqual(
        all.json.changes.map((c) => c.entry),
        await logEntries(),
      );
      const page = await call<{ changes: { index: number }[] }>(
        url,
        root,
        "GET",
        `/v1/directory/changes?after=${size - 3}&limit=1`,
      );
      assert.deepEqual(
        page.json.changes.map((c) => c.index),
        [size - 2],
      );
      const past = await call<{ changes: unknown[] }>(url, root, "GET", `/v1/directory/changes?after=${size + 5}`);
      assert.deepEqual(past.json.changes, []);
    });

    test("a client's key-transparency report becomes an officer alert naming the reporter, deduplicated", async () => {
      const report = {
        kind: "directory_mismatch",
        subject: "HQ/ASIA-1",
        detail: "server lists ksvoboda; the log does not",
      };
      // The officer's WebSocket gets the alert pushed.
      const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
      const frames: Record<string, unknown>[] = [];
      const waiters: (() => void)[] = [];
      ws.on("message", (d: Buffer) => {
        frames.push(JSON.parse(d.toString("utf8")) as Record<string, unknown>);
        for (const w of waiters.splice(0)) w();
      });
      const frame = async (type: string) => {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const f = frames.find((x) => x.type === type);
          if (f) return f;
          assert.ok(Date.now() < deadline, `no ${type} frame: ${JSON.stringify(frames)}`);
          await new Promise<void>((r) => {
            waiters.push(r);
            setTimeout(r, 200);
          });
        }
      };
      await new Promise((r) => ws.once("open", r));
      ws.send(JSON.stringify({ token: olga.token }));
      await frame("ready");
      const first = await audited(() =>
        call<{ id: number; duplicate: boolean }>(url, alice, "POST", "/v1/kt/reports", report),
      );
      assert.equal(first.result.status, 202, first.result.text);
      assert.equal(first.result.json.duplicate, false);
      const pushed = await frame("alert");
      ws.close();
      assert.deepEqual([pushed.id, pushed.rule, pushed.actor], [first.result.json.id, "kt-report", "alice"]);
      assert.deepEqual(
        first.events.map((e) => [e.action, e.actor, e.device, e.object, e.outcome]),
        [["kt.report", "alice", alice.device, "HQ/ASIA-1", "ok"]],
      );
      const again = await call<{ id: number; duplicate: boolean }>(url, alice, "POST", "/v1/kt/reports", report);
      assert.equal(again.status, 202);
      assert.deepEqual(again.json, { id: first.result.json.id, duplicate: true });
      const other = await call<{ id: number; duplicate: boolean }>(url, alice, "POST", "/v1/kt/reports", {
        ...report,
        kind: "unknown_device",
        detail: "d-ghost000001 of ksvoboda",
      });
      assert.equal(other.json.duplicate, false);
      assert.notEqual(other.json.id, first.result.json.id);

      // The same report sent five times at once: one alert.
      const burst = { ...report, detail: "sent at once" };
      const five = await Promise.all(
        [1, 2, 3, 4, 5].map(() =>
          call<{ id: number; duplicate: boolean }>(url, alice, "POST", "/v1/kt/reports", burst),
        ),
      );
      assert.deepEqual(
        five.map((r) => r.status),
        [202, 202, 202, 202, 202],
      );
      assert.equal(five.filter((r) => !r.json.duplicate).length, 1, JSON.stringify(five.map((r) => r.json)));
      assert.equal(new Set(five.map((r) => r.json.id)).size, 1);

      const alerts = await call<{
        alerts: { id: number; rule: string; actor: string; severity: string; reason: string; events: string[] }[];
      }>(url, olga, "GET", "/v1/alerts?limit=1000");
      assert.equal(alerts.status, 200, alerts.text);
      const kt = alerts.json.alerts.filter((a) => a.rule === "kt-report");
      assert.deepEqual(
        kt.map((a) => a.id),
        [first.result.json.id, other.json.id, five[0]!.json.id],
      );
      assert.equal(kt[0]!.actor, "alice");
      assert.equal(kt[0]!.severity, "high");
      assert.match(kt[0]!.reason, new RegExp(`alice \\(device ${alice.device}\\): directory_mismatch about HQ/ASIA-1`));
      assert.deepEqual(kt[0]!.events, [first.events[0]!.id]);
      // Non-officers do not see alerts; bad reports are refused.
      assert.equal((await call(url, alice, "GET", "/v1/alerts")).status, 403);
      for (const body of [
        { ...report, kind: "other" },
        { ...report, subject: "x".repeat(201) },
        { ...report, detail: "x".repeat(2001) },
        { ...report, subject: "" },
        { ...report, extra: true },
        { kind: "log_refused", subject: "log" },
      ]) {
        const r = await call(url, alice, "POST", "/v1/kt/reports", body);
        assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      }
      assert.equal((await call(url, null, "POST", "/v1/kt/reports", report)).status, 401);
    });
  });
}
