/**
 * Issue 13 finding 1: rollback and freshness of both logs, with the CLI as separate processes (each `valise` run is a
 * new process reading the profile from disk). The profiles pin the log key, two witnesses generated for this test
 * and quorum 2; the server is a malicious proxy (Fastify onSend hooks) that plays the witnesses — cosigning every
 * checkpoint it serves, with the witnesses' keys at the current time or, to make a checkpoint stale, at a time an
 * hour ago — and, on demand, replays an older witnessed checkpoint, or forges one (the operator holds the log key and
 * here the witnesses collude too: only the client's memory catches it).
 *
 * - audit: `valise audit verify` at size N, then an older witnessed checkpoint → refused as a rollback, also by
 *   `audit query`; another root at the accepted size, or a larger tree that does not extend it → refused as a fork;
 *   cosignatures older than the bound → `{"ok":false,"stale":true,"age":…}` (and a warning on query); honest → ok.
 * - directory: `valise log status` says fresh, then stale (exit 1) for old cosignatures, and `valise sync` raises an
 *   alert, while sends keep working; an older checkpoint replayed to a new process is refused as a rollback.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import {
  auditLogOrigin,
  cosignatureSigner,
  formatCheckpoint,
  formatCosignatureVerifierKey,
  generateNoteKey,
  parseCheckpoint,
  parseVerifierKeyParts,
  signNote,
  type NoteSigner,
} from "@valise/core";
import { ValiseClient, type TrustAnchors } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { startTestServer, type TestServer } from "@valise/server/testing/server";
import { CLI, cliEnv } from "./cli-process.js";
import { cosign } from "./malicious.js";

const HOUR = 3600_000;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: 60_000, env: cliEnv({ VALISE_CHECKPOINT_MAX_AGE: "" }) },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Witness keys made for this test: one signer at the current time, one whose clock is an hour behind. */
function witnesses(n: number): { vkey: string; now: NoteSigner; hourAgo: NoteSigner }[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `witness-${i}.freshness.test`;
    const sk = new Uint8Array(randomBytes(32));
    const pub = parseVerifierKeyParts(generateNoteKey(name, sk).vkey).publicKey;
    return {
      vkey: formatCosignatureVerifierKey(name, pub),
      now: cosignatureSigner(name, sk, { now: () => Date.now() }),
      hourAgo: cosignatureSigner(name, sk, { now: () => Date.now() - HOUR }),
    };
  });
}

const sizeOf = (note: string) => parseCheckpoint(note.slice(0, note.lastIndexOf("\n\n") + 1)).size;

interface Attack {
  /** Rewrite the served checkpoint (given the log-signed note without cosignatures). */
  audit?: (plain: string) => string;
  directory?: (plain: string) => string;
}

describe("checkpoint rollback, fork and freshness across CLI processes", { timeout: 240_000 }, () => {
  let server: TestServer;
  const ws = witnesses(2);
  const attack: Attack = {};
  /** Every note served, newest last. */
  const served: { audit: string[]; directory: string[] } = { audit: [], directory: [] };
  const dirs = mkdtempSync(join(tmpdir(), "valise-ckpt-"));
  const olgaDir = join(dirs, "olga");
  const aliceDir = join(dirs, "alice");
  let trust: TrustAnchors;

  const fresh = (plain: string) =>
    cosign(
      plain,
      ws.map((w) => w.now),
    );
  const old = (plain: string) =>
    cosign(
      plain,
      ws.map((w) => w.hourAgo),
    );

  function proxy(app: FastifyInstance): void {
    app.addHook("onSend", async (req, reply, payload) => {
      if (reply.statusCode !== 200 || typeof payload !== "string") return payload;
      const url = req.routeOptions.url;
      const log =
        url === "/v1/log/audit/checkpoint" ? "audit" : url === "/v1/log/directory/checkpoint" ? "directory" : null;
      if (!log) return payload;
      const note = (attack[log] ?? fresh)(payload);
      served[log].push(note);
      return note;
    });
  }

  /** A checkpoint the server never had, signed with its log key and cosigned (now) by the colluding witnesses. */
  function forged(origin: string, size: number): string {
    const text = formatCheckpoint({ origin, size, rootHash: new Uint8Array(randomBytes(32)), extensions: [] });
    return signNote(text, [server.logKey!.signer, ...ws.map((w) => w.now)]);
  }

  /** Waits until the server signed an audit checkpoint larger than `than` covering the log as it is now. */
  async function auditGrown(than: number): Promise<number> {
    for (let i = 0; i < 1000; i++) {
      const size = await server.store.audit.size();
      const cp = await server.store.audit.latestCheckpoint();
      if (cp && cp.size > than && cp.size >= size) return cp.size;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no audit checkpoint larger than ${than}`);
  }

  async function directorySettled(): Promise<number> {
    const log = server.store.directory.log;
    for (let i = 0; i < 1000; i++) {
      const size = await log.size();
      if ((await log.latestCheckpoint())?.size === size) return size;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("no directory checkpoint covers the log");
  }

  async function enroll(handle: string, dir: string): Promise<ValiseClient> {
    const { enrollmentCode } = await server.store.directory.newEnrollmentCode(handle);
    return ValiseClient.enroll({
      serverUrl: server.url,
      code: enrollmentCode,
      deviceName: "laptop",
      store: new FileKeyStore(dir),
      cipher: nodeStreamCipher(),
      trust,
      transparency: { pollMs: 20 },
    });
  }

  before(async () => {
    server = await startTestServer("sqlite", { logKey: true, beforeListen: (app) => proxy(app) });
    trust = { logKey: server.logKey!.vkey, witnesses: ws.map((w) => w.vkey), quorum: 2 };
    const d = server.store.directory;
    await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
    await d.addUnit("HQ/SEC", "SECRET/ASIA");
    await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
    await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
    await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET", role: "officer" });
    const alice = await enroll("alice", aliceDir);
    const bob = await enroll("bob", join(dirs, "bob"));
    await enroll("olga", olgaDir);
    await alice.send("bob", "hello", "CONFIDENTIAL/ASIA");
    await bob.sync();
  });
  after(async () => {
    await server.close();
    rmSync(dirs, { recursive: true, force: true });
  });

  type VerifyOut = {
    ok: boolean;
    size: number;
    acceptedSize?: number | null;
    refused?: string;
    stale?: boolean;
    age?: number | null;
    freshness?: string;
    reason?: string;
  };
  const verify = async (...extra: string[]) => {
    const r = await cli("audit", "verify", "--profile", olgaDir, "--json", ...extra);
    return { code: r.code, out: JSON.parse(r.stdout) as VerifyOut, stderr: r.stderr };
  };

  let accepted = 0;

  test("audit: verified at size N, an older witnessed checkpoint is refused as a rollback by a new process", async () => {
    await auditGrown(0);
    const first = await verify();
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.out.ok, true);
    const older = served.audit.at(-1)!;
    assert.equal(sizeOf(older), first.out.size);

    // The log grows (each verify is itself audited); the officer verifies the larger tree.
    await auditGrown(first.out.size);
    const second = await verify();
    assert.equal(second.code, 0, second.stderr);
    assert.ok(second.out.size > first.out.size);
    accepted = second.out.size;

    // The server replays the older witnessed checkpoint (validly signed and cosigned: only memory catches it).
    attack.audit = () => older;
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      assert.equal(r.out.ok, false);
      assert.equal(r.out.refused, "rollback");
      assert.equal(r.out.size, first.out.size);
      assert.equal(r.out.acceptedSize, accepted);
      assert.match(r.out.reason ?? "", /audit log checkpoint refused: rollback/);
      const q = await cli("audit", "query", "--profile", olgaDir, "--actor", "alice", "--json");
      assert.equal(q.code, 1, "a query over the rolled-back log must not be answered");
      assert.match(q.stderr, /rollback — the server showed size \d+, this device already accepted size \d+/);
    } finally {
      delete attack.audit;
    }
    assert.equal(second.out.acceptedSize, first.out.size, "verify says which size it had accepted before");
  });

  test("audit: another root at the accepted size, or a larger tree that does not extend it, is refused as a fork", async () => {
    const origin = auditLogOrigin(server.logKey!.origin);
    attack.audit = () => forged(origin, accepted);
    try {
      const same = await verify();
      assert.equal(same.code, 1);
      assert.equal(same.out.refused, "fork");
      assert.match(same.out.reason ?? "", /fork — a different root at size/);
      const larger = await auditGrown(accepted);
      attack.audit = () => forged(origin, larger);
      const grown = await verify();
      assert.equal(grown.code, 1);
      assert.equal(grown.out.refused, "fork");
      assert.match(grown.out.reason ?? "", /does not extend the accepted size \d+ \(consistency proof fails\)/);
    } finally {
      delete attack.audit;
    }
  });

  test("audit: cosignatures older than the bound are reported stale, never ok; a wider bound accepts them", async () => {
    await auditGrown(accepted);
    attack.audit = old;
    try {
      const r = await verify();
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.out.ok, false);
      assert.equal(r.out.stale, true);
      assert.ok(r.out.age! >= 3600 && r.out.age! < 3700, String(r.out.age));
      assert.ok(r.out.size > accepted, "a consistent, larger tree: only its age is wrong");
      assert.match(r.out.reason ?? "", /stale/);
      const q = await cli("audit", "query", "--profile", olgaDir, "--actor", "alice", "--json");
      assert.equal(q.code, 0, q.stderr);
      assert.match(q.stderr, /WARNING: the audit log checkpoint the server shows is stale/);
      assert.equal((JSON.parse(q.stdout) as { stale: boolean }).stale, true);
      const wide = await verify("--max-age", "7200");
      assert.equal(wide.code, 0, wide.stderr);
      assert.deepEqual([wide.out.ok, wide.out.stale], [true, false]);
    } finally {
      delete attack.audit;
    }
  });

  test("audit: the honest server is ok and fresh again", async () => {
    await auditGrown(accepted);
    const r = await verify();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.out.ok, r.out.stale, r.out.freshness], [true, false, "fresh"]);
    assert.ok(r.out.age! <= 5);
  });

  type Status = {
    ok: boolean;
    size: number | null;
    stale: boolean;
    age: number | null;
    freshness: string;
    error: string | null;
  };
  const status = async () => {
    const r = await cli("log", "status", "--profile", aliceDir, "--json");
    return { code: r.code, out: JSON.parse(r.stdout) as Status, stderr: r.stderr };
  };

  test("directory: log status fresh, then stale with an hour-old quorum (sync alerts, sends go on), then a rollback refused", async () => {
    const size = await directorySettled();
    const s1 = await status();
    assert.equal(s1.code, 0, s1.stderr);
    assert.deepEqual([s1.out.ok, s1.out.stale, s1.out.freshness, s1.out.size], [true, false, "fresh", size]);
    const older = served.directory.at(-1)!;

    // The directory grows; the server shows the new tree with an hour-old witness quorum.
    await server.store.directory.addUnit("EMB/BEIJING", "SECRET/ASIA");
    const grown = await directorySettled();
    assert.ok(grown > size);
    attack.directory = old;
    try {
      const s2 = await status();
      assert.equal(s2.code, 1);
      assert.equal(s2.out.stale, true);
      assert.equal(s2.out.freshness, "stale");
      assert.equal(s2.out.size, grown, "consistent, so accepted — and marked stale");
      assert.ok(s2.out.age! >= 3600 && s2.out.age! < 3700, String(s2.out.age));
      const sync = await cli("sync", "--profile", aliceDir, "--json");
      assert.equal(sync.code, 0, sync.stderr);
      const items = (JSON.parse(sync.stdout) as { items: { type: string; text: string }[] }).items;
      assert.ok(
        items.some((i) => i.type === "alert" && /directory log checkpoint the server shows is stale/.test(i.text)),
        JSON.stringify(items),
      );
      const send = await cli("send", "--profile", aliceDir, "--to", "bob", "--label", "CONFIDENTIAL/ASIA", "still on");
      assert.equal(send.code, 0, `a stale directory log is a status, not a failure: ${send.stderr}`);
    } finally {
      delete attack.directory;
    }

    // An older witnessed directory checkpoint replayed to a new process: refused, the accepted state kept.
    attack.directory = () => older;
    try {
      const s3 = await status();
      assert.equal(s3.code, 1);
      assert.equal(s3.out.size, grown);
      assert.match(s3.out.error ?? "", /directory log checkpoint refused: rollback — the server showed size \d+/);
    } finally {
      delete attack.directory;
    }
    const s4 = await status();
    assert.equal(s4.code, 0, s4.stderr);
    assert.deepEqual([s4.out.ok, s4.out.freshness], [true, "fresh"]);
  });
});
