/**
 * The audit log end to end (DESIGN.md §3 "Audit log"): SDK clients send and read (over HTTP and WebSocket frames),
 * and a security officer runs `valise audit tail|query|verify|export` with their own device profile. `verify` says
 * ok on an honest server and not ok once an event row is altered or deleted in the database after checkpointing;
 * exported events have exactly the DESIGN fields and carry no message content; a non-officer is refused, audited.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { sql } from "kysely";
import { AUDIT_FIELDS, parseAuditEvent, toBase64, type AuditEvent } from "@valise/core";
import { MemoryKeyStore, ValiseClient } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { buildApp, loadOrCreateLogKey, openStore, protocolServerMls, type LogKey, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import type { FastifyInstance } from "fastify";

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const SECRET_TEXT = "Meeting with the ambassador at 10, bring the ASIA file";

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Sends one MLS application message as a WebSocket `send` frame; resolves with the answer frame. */
function wsSend(url: string, token: string, frame: Record<string, unknown>): Promise<{ type: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
    ws.on("message", (raw: Buffer) => {
      const f = JSON.parse(raw.toString("utf8")) as { type: string; code?: string };
      if (f.type === "ready") ws.send(JSON.stringify(frame));
      else if (f.type === "ack" || f.type === "error") {
        ws.close();
        resolve(f);
      }
    });
    ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token })));
    ws.once("error", reject);
  });
}

// The CLI end to end on SQLite (each `valise` run is a process start); server/test/audit-log.test.ts covers both
// databases.
for (const kind of DATABASE_KINDS.filter((k) => k === "sqlite")) {
  describe(`valise audit on ${kind}`, { timeout: 120_000 }, () => {
    let db: TestDb;
    let store: Store;
    let app: FastifyInstance;
    let key: LogKey;
    let url = "";
    const profiles = mkdtempSync(join(tmpdir(), "valise-audit-profiles-"));
    const olgaDir = join(profiles, "olga");
    const aliceDir = join(profiles, "alice");
    let conversation = "";

    async function enroll(handle: string, dir?: string): Promise<ValiseClient> {
      const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
      return ValiseClient.enroll({
        serverUrl: url,
        code: enrollmentCode,
        deviceName: "laptop",
        store: dir ? new FileKeyStore(dir) : new MemoryKeyStore(),
        // These profiles pin nothing (the audit commands then use the key the server announces, or --log-key).
        pinOnFirstUse: false,
      });
    }

    async function events(): Promise<AuditEvent[]> {
      return (await store.audit.entries(0, await store.audit.size())).map((d) => {
        const p = parseAuditEvent(d);
        assert.ok(p.ok);
        return p.event;
      });
    }

    /** Waits until the latest audit checkpoint covers the log as it is now. */
    async function checkpointed(): Promise<number> {
      const size = await store.audit.size();
      for (let i = 0; i < 300; i++) {
        if (((await store.audit.latestCheckpoint())?.size ?? -1) >= size) return size;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error("no checkpoint");
    }

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      key = loadOrCreateLogKey({ dataDir: db.dataDir, origin: "test.valise.example/directory", env: {} });
      ({ app } = await buildApp({
        store,
        mls: protocolServerMls,
        logKey: key,
        checkpointIntervalMs: 20,
        loginRatePerMinute: 10_000,
      }));
      url = await app.listen({ port: 0, host: "127.0.0.1" });
      await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA,NATO");
      await store.directory.addUnit("EMB/BEIJING", "SECRET/ASIA,NATO");
      await store.directory.addUnit("HQ/SEC", "SECRET/ASIA,NATO");
      for (const [handle, unit, role] of [
        ["alice", "HQ/ASIA-1", "user"],
        ["bob", "EMB/BEIJING", "user"],
        ["olga", "HQ/SEC", "officer"],
      ] as const)
        await store.directory.addUser({ handle, units: [unit], clearance: "SECRET/ASIA", role });
      const alice = await enroll("alice", aliceDir);
      const bob = await enroll("bob");
      await enroll("olga", olgaDir);
      ({ conversation } = await alice.send("bob", SECRET_TEXT, "CONFIDENTIAL/ASIA"));
      await bob.sync();
      // One more message as a WebSocket frame (a real MLS message of alice's, re-sent under a new key).
      const log = await store.conversations.fetch(conversation, 0, 100, { joinedSeq: 1, leftSeq: null });
      const m = log.filter((x) => x.kind === "application").at(-1)!;
      const payload = toBase64(m.payload);
      const ack = await wsSend(url, alice.transport.token!, {
        type: "send",
        ref: 1,
        conversation,
        idempotencyKey: "ws-audit-0001",
        payload,
      });
      assert.equal(ack.type, "ack");
      // A send into a conversation alice is not in (bob's message to olga, replayed by alice) is denied.
      const other = await bob.send("olga", "hi", "UNCLASSIFIED");
      const theirs = await store.conversations.fetch(other.conversation, 0, 100, { joinedSeq: 1, leftSeq: null });
      const denied = await wsSend(url, alice.transport.token!, {
        type: "send",
        ref: 2,
        conversation: other.conversation,
        idempotencyKey: "ws-audit-0002",
        payload: toBase64(theirs.filter((x) => x.kind === "application").at(-1)!.payload),
      });
      assert.equal(denied.code, "not_found");
    });
    after(async () => {
      await app.close();
      await store.close();
      await db.dispose();
      rmSync(profiles, { recursive: true, force: true });
    });

    test("sends (HTTP and WebSocket), reads and logins are in the log; WS denials too", async () => {
      const ev = await events();
      const sends = ev.filter((e) => e.action === "message.send" && e.actor === "alice" && e.object === conversation);
      // creation, the welcome commit, the first message over HTTP, the WebSocket frame
      assert.ok(sends.length >= 3, JSON.stringify(sends));
      assert.ok(sends.every((e) => e.label === "CONFIDENTIAL/ASIA" && e.outcome === "ok"));
      assert.ok(sends.some((e) => e.client === "valise-sdk/0.1.0"));
      const wsDenied = ev.find((e) => e.action === "message.send" && e.actor === "alice" && e.outcome === "denied");
      assert.ok(wsDenied, "denied WebSocket send audited");
      assert.ok(ev.some((e) => e.action === "message.read" && e.actor === "bob" && e.object === conversation));
      // HTTP logins, then the two WebSocket sessions alice authenticated above (socket logins are audited too).
      assert.deepEqual(
        ev.filter((e) => e.action === "login").map((e) => e.actor),
        ["alice", "bob", "olga", "alice", "alice"],
      );
      assert.deepEqual(
        ev.filter((e) => e.action === "directory.device.add").map((e) => e.actor),
        ["alice", "bob", "olga"],
      );
    });

    test("audit verify: ok on an honest server, with the log key or the key the server announces", async () => {
      const size = await checkpointed();
      const r = await cli("audit", "verify", "--profile", olgaDir, "--json", "--log-key", key.vkey);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { ok: boolean; size: number; keySource: string; origin: string };
      assert.equal(out.ok, true);
      assert.ok(out.size >= size);
      assert.equal(out.keySource, "flag");
      assert.equal(out.origin, "test.valise.example/audit");
      const tofu = JSON.parse((await cli("audit", "verify", "--profile", olgaDir, "--json")).stdout) as {
        ok: boolean;
        keySource: string;
      };
      assert.deepEqual([tofu.ok, tofu.keySource], [true, "server"]);
      const wrong = await cli("audit", "verify", "--profile", olgaDir, "--json", "--log-key", "x+12345678+AQ==");
      assert.notEqual(wrong.code, 0);
    });

    test("audit tail and query print proven events; export writes DESIGN-format JSONL without content", async () => {
      await checkpointed();
      const tail = await cli("audit", "tail", "--profile", olgaDir, "--n", "5", "--json", "--log-key", key.vkey);
      assert.equal(tail.code, 0, tail.stderr);
      const t = JSON.parse(tail.stdout) as { events: AuditEvent[] };
      assert.equal(t.events.length, 5);
      for (let i = 1; i < t.events.length; i++) assert.ok(t.events[i - 1]!.time <= t.events[i]!.time);
      const q = await cli(
        "audit",
        "query",
        "--profile",
        olgaDir,
        "--actor",
        "alice",
        "--action",
        "message.send",
        "--json",
        "--since",
        "2000-01-01T00:00:00Z",
      );
      assert.equal(q.code, 0, q.stderr);
      const found = (JSON.parse(q.stdout) as { events: AuditEvent[] }).events;
      assert.ok(found.length >= 3);
      assert.ok(found.every((e) => e.actor === "alice" && e.action === "message.send"));
      const human = await cli("audit", "tail", "--profile", olgaDir, "--n", "3");
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /olga\/d-\S+ audit\.read audit-log/);

      const ex = await cli("audit", "export", "--profile", olgaDir, "--jsonl", "--log-key", key.vkey);
      assert.equal(ex.code, 0, ex.stderr);
      const lines = ex.stdout.trimEnd().split("\n");
      assert.ok(lines.length >= 10);
      for (const l of lines) {
        const o = JSON.parse(l) as Record<string, unknown>;
        assert.deepEqual(Object.keys(o), [...AUDIT_FIELDS]);
        assert.ok(parseAuditEvent(new TextEncoder().encode(l)).ok);
      }
      assert.ok(!ex.stdout.includes("ambassador"), "message content in the audit log");
      assert.ok(!ex.stdout.includes(key.vkey.split("+")[2]!), "key material in the audit log");
    });

    test("a non-officer is refused (exit 1, forbidden), and the refusal is audited", async () => {
      const r = await cli("audit", "tail", "--profile", aliceDir, "--json");
      assert.equal(r.code, 1);
      assert.match(r.stdout + r.stderr, /forbidden/);
      const last = (await events()).filter((e) => e.actor === "alice").at(-1)!;
      assert.deepEqual([last.action, last.outcome], ["audit.read", "denied"]);
    });

    test("audit verify is not ok once an event is altered or deleted after checkpointing", async () => {
      await checkpointed();
      const h = store.handle.db;
      const row = await sql<{ data: Uint8Array }>`select data from audit_log_entries where idx = 4`.execute(h);
      const original = Buffer.from(row.rows[0]!.data);
      const forged = Buffer.from(original.toString("utf8").replace(/"source":"[^"]*"/, '"source":"10.99.99.99"'));
      assert.notDeepEqual(forged, original);
      await sql`update audit_log_entries set data = ${forged} where idx = 4`.execute(h);
      const bad = await cli("audit", "verify", "--profile", olgaDir, "--json", "--log-key", key.vkey);
      assert.equal(bad.code, 1);
      const out = JSON.parse(bad.stdout) as { ok: boolean; reason: string };
      assert.equal(out.ok, false);
      assert.match(out.reason, /root|altered/);
      const exp = await cli("audit", "export", "--profile", olgaDir, "--jsonl", "--log-key", key.vkey);
      assert.equal(exp.code, 1, "export refuses a log that does not verify");

      await sql`update audit_log_entries set data = ${original} where idx = 4`.execute(h);
      await sql`delete from audit_log_entries where idx = 4`.execute(h);
      const gone = await cli("audit", "verify", "--profile", olgaDir, "--json", "--log-key", key.vkey);
      assert.equal(gone.code, 1);
      const g = JSON.parse(gone.stdout) as { ok: boolean; reason: string; index: number };
      assert.equal(g.ok, false);
      assert.match(g.reason, /missing/);
    });

    test("--help texts", async () => {
      const r = await cli("audit", "--help");
      assert.equal(r.code, 0);
      assert.match(r.stdout, /valise audit <command>/);
    });
  });
}
