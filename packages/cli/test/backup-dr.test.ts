/**
 * Issue 19 disaster recovery, on SQLite and PostgreSQL: `valise admin backup --out FILE` (a separate process) while a
 * load of sends runs against a witnessed server (two real witness apps on 127.0.0.1, quorum 2, both logs) → the
 * database and data directory wiped → `valise admin restore FILE` (a separate process) into a new data directory
 * and database → the restored server starts: every message acknowledged before the backup began reaches the
 * recipient in order, the devices accept the restored directory log, and the witnesses cosign the next checkpoint of
 * both logs (they verify its consistency with what they cosigned before).
 *
 * During the load the witnesses are down (an outage): what they cosigned is older than the backup, the case in which
 * a restore can go on. The older-backup case follows: with the restored server's newer checkpoints cosigned, the
 * same backup restored again is older than what the witnesses hold, and `valise serve` on it refuses to start, naming
 * the log, the sizes and what to do, instead of forking the log (the witnesses would refuse it too: 409/422).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { auditLogOrigin, parseNoteVerifierKey, type NoteVerifier } from "@valise/core";
import { MemoryKeyStore, ValiseClient, type TrustAnchors } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import {
  CosignedCheckpoints,
  WitnessStateDir,
  buildApp,
  buildWitnessApp,
  generateWitnessKey,
  loadOrCreateLogKey,
  openStore,
  parseWitnessSpec,
  protocolServerMls,
  type LogKey,
  type Store,
  type WitnessEndpoint,
  type WitnessKey,
} from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import { CLI, cliEnv, runCli } from "./cli-process.js";

const ORIGIN = "dr.valise.example/directory";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Witness {
  key: WitnessKey;
  endpoint: WitnessEndpoint;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A witness on 127.0.0.1 trusting the log key for both logs; restartable on the same port and state. */
async function witness(name: string, logV: NoteVerifier, dir: string): Promise<Witness> {
  const key = generateWitnessKey(name).key;
  let app: FastifyInstance | undefined;
  let state: WitnessStateDir | undefined;
  let port = 0;
  const w: Witness = {
    key,
    endpoint: undefined as unknown as WitnessEndpoint,
    async start() {
      state = new WitnessStateDir(dir);
      app = await buildWitnessApp({
        key,
        logKeys: [logV, { origin: auditLogOrigin(ORIGIN), key: logV }],
        state,
      });
      await app.listen({ port, host: "127.0.0.1" });
      const a = app.server.address();
      port = typeof a === "object" && a ? a.port : 0;
      w.endpoint = parseWitnessSpec(`http://127.0.0.1:${port}=${key.vkey}`);
    },
    async stop() {
      await app?.close();
      state?.close();
      app = undefined;
    },
  };
  await w.start();
  return w;
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `valise serve` as a process; resolves with its exit code and output once it exits (or null if it came up). */
function serveProcess(
  db: TestDb,
  port: number,
  ws: Witness[],
): Promise<{ code: number | null; out: string; up: boolean }> {
  return new Promise((resolve) => {
    const args = ["serve", "--data", db.dataDir, "--port", String(port), "--no-web", "--log-level", "warn"];
    for (const w of ws) args.push("--witness", `${w.endpoint.url}=${w.key.vkey}`);
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: 60_000, env: cliEnv(db.databaseUrl ? { VALISE_DATABASE_URL: db.databaseUrl } : {}) },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}`, up: false }),
    );
    // If it does come up, that is the failure this test looks for: stop it and say so.
    const poll = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/healthz`)
        .then((r) => {
          if (r.ok) {
            clearInterval(poll);
            child.kill("SIGKILL");
            resolve({ code: null, out: "", up: true });
          }
        })
        .catch(() => undefined);
    }, 200);
    child.on("exit", () => clearInterval(poll));
  });
}

for (const kind of DATABASE_KINDS) {
  describe(`disaster recovery on ${kind}`, () => {
    test(
      "backup FILE during a load of sends, wipe, restore FILE: messages, logs and witnesses; an older backup refused",
      { timeout: 240_000 },
      async () => {
        const tmp = mkdtempSync(join(tmpdir(), "valise-dr-"));
        const archive = join(tmp, "valise-backup.tar");
        let db: TestDb = await freshDb(kind);
        const logKey: LogKey = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
        const logV = parseNoteVerifierKey(logKey.vkey);
        const ws = [
          await witness("w1.dr.test", logV, join(tmp, "w1")),
          await witness("w2.dr.test", logV, join(tmp, "w2")),
        ];
        let store: Store | undefined;
        let app: FastifyInstance | undefined;
        let port = 0;
        const start = async (d: TestDb) => {
          store = await openStore({ dataDir: d.dataDir, databaseUrl: d.databaseUrl });
          ({ app } = await buildApp({
            store,
            mls: protocolServerMls,
            logKey,
            checkpointIntervalMs: 50,
            witnesses: ws.map((w) => w.endpoint),
            witnessTimeoutMs: 2000,
            witnessRetryMs: 100,
          }));
          await app.listen({ port, host: "127.0.0.1" });
          const a = app.server.address();
          port = typeof a === "object" && a ? a.port : 0;
        };
        const stopServer = async () => {
          await app?.close();
          await store?.close();
          app = undefined;
          store = undefined;
        };
        const cosigned = async (log: string) =>
          (await new CosignedCheckpoints(store!.handle.db, log).latest())?.size ?? 0;
        try {
          await start(db);
          const url = `http://127.0.0.1:${port}`;
          await store!.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA,NATO");
          for (const h of ["alice", "bob"])
            await store!.directory.addUser({ handle: h, units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
          const trust: TrustAnchors = { logKey: logKey.vkey, witnesses: ws.map((w) => w.key.vkey), quorum: 2 };
          const enroll = async (h: string) =>
            ValiseClient.enroll({
              serverUrl: url,
              code: (await store!.directory.newEnrollmentCode(h)).enrollmentCode,
              deviceName: "laptop",
              store: new MemoryKeyStore(),
              cipher: nodeStreamCipher(),
              trust,
              transparency: { pollMs: 20 },
            });
          const alice = await enroll("alice");
          const bob = await enroll("bob");
          await alice.send("bob", "first");
          assert.deepEqual(
            (await bob.sync()).filter((i) => i.type === "message").map((i) => (i as { text: string }).text),
            ["first"],
          );
          await until(
            "both logs cosigned",
            async () => (await cosigned("directory")) > 0 && (await cosigned("audit")) > 0,
          );

          // A witness outage: from here on nothing new is cosigned (the server keeps signing and retrying).
          for (const w of ws) await w.stop();

          // The load: alice sends one message after another; each resolved send is acknowledged by the server.
          const acked: string[] = [];
          let stopLoad = false;
          const load = (async () => {
            for (let i = 0; !stopLoad; i++) {
              await alice.send("bob", `m${i}`);
              acked.push(`m${i}`);
            }
          })();
          await until("some load", async () => acked.length >= 5);
          const ackedBefore = acked.length;
          const b = JSON.parse(
            (await runCli(["admin", "backup", "--data", db.dataDir, "--out", archive, "--json"], env(db))).stdout,
          ) as { database: string; bytes: number; logs: { directory: { size: number }; audit: { size: number } } };
          const ackedDuring = acked.length;
          stopLoad = true;
          await load;
          assert.ok(ackedDuring > ackedBefore, `the load went on during the backup (${ackedBefore} → ${ackedDuring})`);
          assert.equal(b.database, kind);
          assert.equal(statSync(archive).mode & 0o077, 0);
          assert.ok(b.bytes > 0 && b.logs.directory.size > 0 && b.logs.audit.size > 0);
          // A backup never overwrites.
          await assert.rejects(
            runCli(["admin", "backup", "--data", db.dataDir, "--out", archive], env(db)),
            /exists: refusing/,
          );

          // Disaster: the server, its database and data directory are gone.
          await stopServer();
          await db.dispose();
          assert.ok(!existsSync(db.dataDir));
          db = await freshDb(kind);
          rmSync(db.dataDir, { recursive: true });
          const r = JSON.parse(
            (await runCli(["admin", "restore", archive, "--data", db.dataDir, "--json"], env(db))).stdout,
          ) as { logs: { directory: { size: number }; audit: { size: number } } };
          assert.ok(r.logs.audit.size >= b.logs.audit.size && r.logs.directory.size === b.logs.directory.size);
          // A second restore into the now non-empty target is refused.
          await assert.rejects(runCli(["admin", "restore", archive, "--data", db.dataDir], env(db)), /not empty/);

          for (const w of ws) await w.start();
          await start(db);
          // Every message acknowledged before the backup began arrives, in order, none missing before the last.
          const got = (await bob.sync()).filter((i) => i.type === "message").map((i) => (i as { text: string }).text);
          assert.deepEqual(got.slice(0, ackedBefore), acked.slice(0, ackedBefore));
          assert.deepEqual(got, acked.slice(0, got.length), "what the backup holds is a prefix of the acknowledged");
          // The devices accept the restored directory log; the witnesses cosign the next checkpoints of both logs.
          for (const c of [alice, bob]) assert.equal((await c.transparency!.monitor()).error, null);
          await store!.directory.addUnit("HQ/AFTER", "SECRET/ASIA,NATO");
          const dirSize = await store!.directory.log.size();
          await until(
            "directory checkpoint cosigned after the restore",
            async () => (await cosigned("directory")) >= dirSize,
          );
          const auditSize = await store!.audit.size();
          await until(
            "audit checkpoint cosigned after the restore",
            async () => (await cosigned("audit")) >= auditSize,
          );
          await alice.send("bob", "after the restore");
          assert.ok(
            (await bob.sync()).some(
              (i) => i.type === "message" && (i as { text: string }).text === "after the restore",
            ),
          );

          // The older-backup case: the witnesses now hold larger trees than the backup. Restored again, it is refused.
          await stopServer();
          await db.dispose();
          db = await freshDb(kind);
          rmSync(db.dataDir, { recursive: true });
          await runCli(["admin", "restore", archive, "--data", db.dataDir], env(db));
          const s = await serveProcess(db, port, ws);
          assert.equal(s.up, false, "a server on a backup older than the witnessed log must not start");
          assert.notEqual(s.code, 0);
          assert.match(
            s.out,
            /the (directory|audit) log in this database has \d+ entries, but witness http:\/\/127\.0\.0\.1:\d+ cosigned a checkpoint of \d+ entries/,
          );
          assert.match(s.out, /Refusing to start/);
          assert.match(
            s.out,
            /restore a newer backup, one whose backup\.json shows logs\.directory\.size ≥ \d+ and logs\.audit\.size ≥ \d+/,
          );
          assert.match(s.out, /Disaster recovery: a log that cannot be continued/);
          alice.close();
          bob.close();
        } finally {
          await stopServer();
          for (const w of ws) await w.stop();
          await db.dispose();
          rmSync(tmp, { recursive: true, force: true });
        }
      },
    );
  });
}

/** The CLI's environment for a database: VALISE_DATABASE_URL for PostgreSQL, none for SQLite. */
const env = (d: TestDb): NodeJS.ProcessEnv => (d.databaseUrl ? { VALISE_DATABASE_URL: d.databaseUrl } : {});
