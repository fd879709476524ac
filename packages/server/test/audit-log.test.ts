/**
 * The audit log (DESIGN.md §3 "Audit log") on every database: reads, logins, denied reads and directory changes
 * each append one event with exactly the DESIGN fields; officers read the log, anyone else gets 403 (and that is
 * audited too); checkpoints are signed under the audit origin and the entries hash to their root; a tampered or
 * deleted event no longer does; if the audit append fails the request fails; no token, key or signature leaks in.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import {
  AUDIT_FIELDS,
  auditLogOrigin,
  equalBytes,
  fromBase64,
  leafHash,
  parseAuditEvent,
  parseNoteVerifierKey,
  rootFromLeafHashes,
  verifyCheckpointQuorum,
  verifyInclusion,
  type AuditEvent,
  type Checkpoint,
} from "@valise/core";
import { buildApp, loadOrCreateLogKey, openStore, protocolServerMls, type LogKey, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const ORIGIN = "test.valise.example/directory";
const CONV = "c-audit0000001";

function newDeviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  return { raw: new Uint8Array(raw), privateKey };
}

for (const kind of DATABASE_KINDS) {
  describe(`audit log on ${kind}`, () => {
    let db: TestDb;
    let store: Store;
    let app: FastifyInstance;
    let key: LogKey;
    const tokens: Record<string, string> = {};
    const secrets: string[] = [];

    async function enroll(handle: string, id: string) {
      const k = newDeviceKey();
      const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
      secrets.push(enrollmentCode);
      await store.directory.redeemEnrollment(
        enrollmentCode,
        { id, name: "t", signaturePublicKey: k.raw },
        [],
        () => {},
      );
      const ch = await app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: id } });
      const { challenge } = ch.json<{ challenge: string }>();
      const signature = sign(null, Buffer.from(`valise-login:${challenge}`), k.privateKey).toString("base64");
      const s = await app.inject({
        method: "POST",
        url: "/v1/auth/session",
        headers: { "x-valise-client": "test-suite/1.0" },
        payload: { device: id, challenge, signature },
      });
      assert.equal(s.statusCode, 201);
      secrets.push(signature, challenge);
      tokens[handle] = s.json<{ token: string }>().token;
      secrets.push(tokens[handle]);
      return k;
    }

    const get = (url: string, as?: string) =>
      app.inject({ method: "GET", url, headers: as ? { authorization: `Bearer ${tokens[as]}` } : {} });

    /** All events in the log, straight from the store, parsed. */
    async function events(): Promise<AuditEvent[]> {
      const raw = await store.audit.entries(0, await store.audit.size());
      return raw.map((d) => {
        const p = parseAuditEvent(d);
        assert.ok(p.ok, p.ok ? "" : p.reason);
        return p.event;
      });
    }

    /** Waits for a checkpoint covering the log as it is now; verifies signature and origin. */
    async function checkpoint(): Promise<Checkpoint> {
      const size = await store.audit.size();
      for (let i = 0; i < 200; i++) {
        const r = await get("/v1/log/audit/checkpoint");
        if (r.statusCode === 200) {
          const v = verifyCheckpointQuorum(r.body, parseNoteVerifierKey(key.vkey), [], 0, {
            origin: auditLogOrigin(key.origin),
          });
          assert.ok(v.ok, v.ok ? "" : v.reason);
          if (v.checkpoint.size >= size) return v.checkpoint;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error("no audit checkpoint");
    }

    /** What `valise audit verify` does: every entry through the officer API, hashed into the checkpoint's root. */
    async function verifyAsOfficer(cp: Checkpoint): Promise<{ ok: boolean; reason?: string }> {
      const r = await get(`/v1/log/audit/entries?start=0&count=${Math.min(cp.size, 1000)}`, "olga");
      assert.equal(r.statusCode, 200);
      const entries = r.json<{ entries: string[] }>().entries.map(fromBase64);
      if (entries.length !== cp.size) return { ok: false, reason: "missing entries" };
      if (entries.some((e) => !parseAuditEvent(e).ok)) return { ok: false, reason: "bad event" };
      if (!equalBytes(rootFromLeafHashes(entries.map(leafHash)), cp.rootHash)) return { ok: false, reason: "root" };
      return { ok: true };
    }

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      key = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
      ({ app } = await buildApp({
        store,
        mls: protocolServerMls,
        logKey: key,
        checkpointIntervalMs: 20,
        loginRatePerMinute: 1000,
      }));
      await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await store.directory.addUnit("HQ/SEC", "SECRET/ASIA");
      await store.directory.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await store.directory.addUser({ handle: "mallory", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      await store.directory.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET", role: "officer" });
      await enroll("alice", "d-alice0000001");
      await enroll("mallory", "d-mallory00001");
      await enroll("olga", "d-olga00000001");
      const r = await app.inject({
        method: "POST",
        url: "/v1/conversations",
        headers: { authorization: `Bearer ${tokens.alice}` },
        payload: { id: CONV, kind: "unit", unit: "HQ/ASIA-1", label: "CONFIDENTIAL/ASIA" },
      });
      assert.equal(r.statusCode, 201);
    });
    after(async () => {
      await app.close();
      await store.close();
      await db.dispose();
    });

    test("logins are audited with source and client; a failed login for a known device is denied", async () => {
      const ev = await events();
      const logins = ev.filter((e) => e.action === "login");
      assert.deepEqual(
        logins.map((e) => [e.actor, e.device, e.outcome]),
        [
          ["alice", "d-alice0000001", "ok"],
          ["mallory", "d-mallory00001", "ok"],
          ["olga", "d-olga00000001", "ok"],
        ],
      );
      assert.equal(logins[0]!.client, "test-suite/1.0");
      assert.equal(logins[0]!.source, "127.0.0.1");
      assert.equal(logins[0]!.unit, "HQ/ASIA-1");
      assert.equal(logins[2]!.unit, "HQ/SEC");
      const ch = await app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: "d-alice0000001" } });
      const { challenge } = ch.json<{ challenge: string }>();
      const bad = await app.inject({
        method: "POST",
        url: "/v1/auth/session",
        payload: { device: "d-alice0000001", challenge, signature: "A".repeat(86) + "==" },
      });
      assert.equal(bad.statusCode, 401);
      const last = (await events()).at(-1)!;
      assert.deepEqual([last.action, last.actor, last.outcome], ["login", "alice", "denied"]);
    });

    test("reads, denied reads and directory reads each append one event with label, unit and bytes", async () => {
      const before = await store.audit.size();
      const ok = await get(`/v1/conversations/${CONV}/messages`, "alice");
      assert.equal(ok.statusCode, 200);
      const denied = await get(`/v1/conversations/${CONV}/messages`, "mallory");
      assert.equal(denied.statusCode, 404);
      const user = await get("/v1/users/alice", "mallory");
      assert.equal(user.statusCode, 200);
      const ev = (await events()).slice(before);
      assert.equal(ev.length, 3);
      assert.deepEqual(
        ev.map((e) => [e.actor, e.action, e.object, e.label, e.unit, e.outcome]),
        [
          ["alice", "message.read", CONV, "CONFIDENTIAL/ASIA", "HQ/ASIA-1", "ok"],
          ["mallory", "message.read", CONV, "CONFIDENTIAL/ASIA", "HQ/ASIA-1", "denied"],
          ["mallory", "directory.read", "alice", null, "HQ/ASIA-1", "ok"],
        ],
      );
      assert.equal(ev[0]!.bytes, ok.rawPayload.length);
      assert.equal(ev[2]!.bytes, user.rawPayload.length);
      assert.equal(ev[0]!.device, "d-alice0000001");
      for (const e of ev) {
        assert.equal(e.canary, false);
        assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.match(e.id, /^e-[0-9a-f]{20}$/);
      }
    });

    test("the conversation's creation is a message.send with its label", async () => {
      const c = (await events()).find((e) => e.action === "message.send" && e.object === CONV)!;
      assert.deepEqual([c.actor, c.label, c.unit, c.outcome], ["alice", "CONFIDENTIAL/ASIA", "HQ/ASIA-1", "ok"]);
      assert.ok(c.bytes > 0);
    });

    test("user creation, device revocation and clearance changes by the operator are audited (actor admin-cli)", async () => {
      await store.directory.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      await enroll("bob", "d-bob000000001");
      await store.directory.setClearance("bob", "CONFIDENTIAL");
      await store.directory.revokeDevice("d-bob000000001");
      const ev = (await events()).filter((e) => e.action.startsWith("directory.") && e.object === "bob");
      assert.deepEqual(
        ev.map((e) => [e.action, e.actor, e.target_device, e.unit, e.source]),
        [
          ["directory.user.add", "admin-cli", null, "HQ/ASIA-1", "local"],
          ["directory.clearance.set", "admin-cli", null, "HQ/ASIA-1", "local"],
          ["directory.device.revoke", "admin-cli", "d-bob000000001", "HQ/ASIA-1", "local"],
        ],
      );
    });

    test("enrollment over the API is a directory.device.add by the new device's user, with its method", async () => {
      await store.directory.addUser({ handle: "carol", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      // Issue 16: the code's issuer (valise admin user code carol --officer olga) is audited with the enrolment.
      const { enrollmentCode } = await store.directory.newEnrollmentCode("carol", {
        actor: "olga",
        source: "local",
        client: "valise-admin",
      });
      const k = newDeviceKey();
      const r = await app.inject({
        method: "POST",
        url: "/v1/enroll",
        payload: {
          code: enrollmentCode,
          device: { id: "d-carol0000001", name: "phone", signaturePublicKey: Buffer.from(k.raw).toString("base64") },
          keyPackages: [],
        },
      });
      assert.equal(r.statusCode, 201);
      const [m, e] = (await events()).slice(-2);
      assert.deepEqual(
        [e!.action, e!.actor, e!.device, e!.object, e!.target_device, e!.outcome],
        ["directory.device.add", "carol", "d-carol0000001", "carol", "d-carol0000001", "ok"],
      );
      assert.deepEqual(
        [m!.action, m!.actor, m!.device, m!.object, m!.target_device, m!.source, m!.unit, m!.outcome],
        ["device.enrolment", "carol", "d-carol0000001", "code:olga", "d-carol0000001", "127.0.0.1", "HQ/ASIA-1", "ok"],
      );
    });

    test("only officers read the audit log; a refusal is itself audited", async () => {
      for (const url of [
        "/v1/log/audit/entries?start=0&count=1",
        "/v1/log/audit/events?limit=5",
        "/v1/log/audit/tile/0/000.p/1",
        "/v1/log/audit/proof/inclusion?index=0&size=1",
      ]) {
        const r = await get(url, "mallory");
        assert.equal(r.statusCode, 403, url);
        const last = (await events()).at(-1)!;
        assert.deepEqual([last.actor, last.action, last.outcome], ["mallory", "audit.read", "denied"]);
      }
      assert.equal((await get("/v1/log/audit/entries?start=0&count=1")).statusCode, 401);
      const r = await get("/v1/log/audit/events?actor=mallory&action=message.read&limit=10", "olga");
      assert.equal(r.statusCode, 200);
      const found = r.json<{ events: { index: number; entry: string }[] }>().events;
      assert.equal(found.length, 1);
      const e = parseAuditEvent(fromBase64(found[0]!.entry));
      assert.ok(e.ok && e.event.outcome === "denied" && e.event.object === CONV);
      const last = (await events()).at(-1)!;
      assert.deepEqual([last.actor, last.action, last.outcome], ["olga", "audit.read", "ok"]);
      assert.equal((await get("/v1/log/audit/events?nope=1", "olga")).statusCode, 400);
      assert.equal((await get("/v1/log/audit/events?since=yesterday", "olga")).statusCode, 400);
      assert.equal((await get("/v1/log/audit/entries?start=0&count=5000", "olga")).statusCode, 400);
    });

    test("officers look a cable up by reference (metadata only, audited); its reads are found by id", async () => {
      const release = async (id: string, originator: string, sender: string, device: string) => {
        const blob = `b-${id.slice(2)}`;
        await store.blobs.create({ id: blob, owner: sender, ownerDevice: device, size: 1 });
        await store.blobs.setReceived(blob, 1);
        return (
          await store.cables.release({
            id,
            originator,
            action: ["HQ/ASIA-1"],
            info: [],
            precedence: "ROUTINE",
            precedenceRank: 0,
            label: "CONFIDENTIAL/ASIA",
            blob,
            corrects: null,
            sender,
            senderDevice: device,
            requestHash: id,
          })
        ).cable;
      };
      const a = await release("k-auditref00001", "HQ/ASIA-1", "alice", "d-alice0000001");
      const b = await release("k-auditref00002", "HQ/SEC", "olga", "d-olga00000001");
      assert.equal(a.reference.split(" ")[1], b.reference.split(" ")[1], "same number, two originators");
      assert.equal((await get(`/v1/cables/${a.id}`, "alice")).statusCode, 200);
      const url = (ref: string) => `/v1/audit/cables/by-reference?reference=${encodeURIComponent(ref)}`;

      const denied = await get(url(a.reference), "mallory");
      assert.equal(denied.statusCode, 403);
      let last = (await events()).at(-1)!;
      assert.deepEqual(
        [last.actor, last.action, last.object, last.outcome],
        ["mallory", "audit.read", a.reference, "denied"],
      );
      assert.equal((await get(url(a.reference))).statusCode, 401);

      const ok = await get(url(a.reference), "olga");
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual(ok.json(), {
        id: a.id,
        reference: a.reference,
        originator: "HQ/ASIA-1",
        label: "CONFIDENTIAL/ASIA",
        createdAt: a.createdAt,
      });
      last = (await events()).at(-1)!;
      assert.deepEqual(
        [last.actor, last.action, last.object, last.label, last.outcome],
        ["olga", "audit.read", a.id, "CONFIDENTIAL/ASIA", "ok"],
      );
      // The number alone: ambiguous here (409 naming both), unique once the originator is given.
      const bare = await get(url(a.reference.split(" ")[1]!), "olga");
      assert.equal(bare.statusCode, 409, bare.body);
      assert.deepEqual(bare.json<{ references: string[] }>().references.sort(), [a.reference, b.reference].sort());
      assert.equal((await get(url("HQ/ASIA-1 1999/000042"), "olga")).statusCode, 404);
      assert.equal((await get(url("not a reference"), "olga")).statusCode, 400);
      assert.equal((await get("/v1/audit/cables/by-reference", "olga")).statusCode, 400);
      assert.equal((await get(`${url(a.reference)}&x=1`, "olga")).statusCode, 400);

      const reads = await get(`/v1/log/audit/events?object=${a.id}&action=cable.read&limit=10`, "olga");
      const found = reads.json<{ events: { entry: string }[] }>().events.map((e) => {
        const p = parseAuditEvent(fromBase64(e.entry));
        assert.ok(p.ok);
        return p.event;
      });
      assert.deepEqual(
        found.map((e) => [e.actor, e.outcome]),
        [["alice", "ok"]],
      );
    });

    test("events have exactly the DESIGN fields, and no token, signature, code or key in them", async () => {
      const raw = await store.audit.entries(0, await store.audit.size());
      const text = raw.map((d) => Buffer.from(d).toString("utf8")).join("\n");
      for (const d of raw)
        assert.deepEqual(Object.keys(JSON.parse(Buffer.from(d).toString("utf8")) as object), [...AUDIT_FIELDS]);
      for (const s of secrets) assert.ok(!text.includes(s), "a secret leaked into the audit log");
    });

    test("checkpoints are signed under the audit origin; entries hash to the root; inclusion proofs verify", async () => {
      const cp = await checkpoint();
      assert.equal(cp.origin, "test.valise.example/audit");
      assert.deepEqual(await verifyAsOfficer(cp), { ok: true });
      const r = await get(`/v1/log/audit/events?limit=3&size=${cp.size}`, "olga");
      const found = r.json<{ events: { index: number; entry: string; proof: string[] }[] }>().events;
      assert.equal(found.length, 3);
      for (const e of found) {
        assert.ok(e.index < cp.size);
        const ok = verifyInclusion(
          leafHash(fromBase64(e.entry)),
          e.index,
          cp.size,
          e.proof.map(fromBase64),
          cp.rootHash,
        );
        assert.ok(ok);
      }
      const k = await get("/v1/log/audit/key");
      assert.deepEqual(k.json(), { vkey: key.vkey, origin: "test.valise.example/audit" });
      const c = await get("/v1/log/audit/proof/consistency?from=1&to=2");
      assert.equal(c.statusCode, 200);
    });

    test("a tampered or deleted event after checkpointing no longer hashes to the signed root", async () => {
      const cp = await checkpoint();
      const h = store.handle.db;
      const row = await sql<{ data: Uint8Array }>`select data from audit_log_entries where idx = 3`.execute(h);
      const original = new Uint8Array(row.rows[0]!.data);
      const forged = Buffer.from(
        Buffer.from(original)
          .toString("utf8")
          .replace(/"outcome":"(ok|denied)"/, (_m, o: string) =>
            o === "ok" ? '"outcome":"denied"' : '"outcome":"ok"',
          ),
      );
      await sql`update audit_log_entries set data = ${forged} where idx = 3`.execute(h);
      assert.equal((await verifyAsOfficer(cp)).ok, false);
      await sql`update audit_log_entries set data = ${Buffer.from(original)} where idx = 3`.execute(h);
      assert.equal((await verifyAsOfficer(cp)).ok, true);
      await sql`delete from audit_log_entries where idx = 2`.execute(h);
      assert.equal((await verifyAsOfficer(cp)).ok, false);
    });

    test("if the audit append fails, the request fails (503) instead of being served unaudited", async () => {
      const orig = store.audit.appendBatch.bind(store.audit);
      store.audit.appendBatch = async () => {
        throw new Error("disk full");
      };
      try {
        const r = await get("/v1/users/alice", "alice");
        assert.equal(r.statusCode, 503);
        assert.equal(r.json<{ code: string }>().code, "store_error");
        assert.ok(!r.body.includes("clearance"));
      } finally {
        store.audit.appendBatch = orig;
      }
      assert.equal((await get("/v1/users/alice", "alice")).statusCode, 200);
    });
  });
}
