/**
 * Issue 19 retention/audit: `valise audit export --out FILE --from --to` writes an offline export (entries, their
 * inclusion proofs, the signed checkpoint, a consistency proof from the first `to` entries), and `valise audit verify
 * --offline FILE --log-key …` checks it with no server and no profile: ok on the export, not ok with another log key,
 * and not ok for every copy of the file with one byte altered (each position in turn), a truncated file or an entry
 * moved to another index. SQLite, in-process server, the CLI as separate processes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ValiseClient } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { buildApp, loadOrCreateLogKey, openStore, protocolServerMls, type LogKey, type Store } from "@valise/server";
import { freshDb, type TestDb } from "@valise/server/testing/databases";
import type { FastifyInstance } from "fastify";
import { verifyOfflineExport } from "../src/audit-offline.js";

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("offline audit export", { timeout: 240_000 }, () => {
  let db: TestDb;
  let store: Store;
  let app: FastifyInstance;
  let key: LogKey;
  const profiles = mkdtempSync(join(tmpdir(), "valise-audit-offline-profiles-"));
  const olgaDir = join(profiles, "olga");

  async function checkpointed(): Promise<number> {
    const size = await store.audit.size();
    for (let i = 0; i < 500; i++) {
      if (((await store.audit.latestCheckpoint())?.size ?? -1) >= size) return size;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("no checkpoint");
  }

  before(async () => {
    db = await freshDb("sqlite");
    store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
    key = loadOrCreateLogKey({ dataDir: db.dataDir, origin: "test.valise.example/directory", env: {} });
    ({ app } = await buildApp({ store, mls: protocolServerMls, logKey: key, checkpointIntervalMs: 20 }));
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    await store.directory.addUnit("HQ/SEC", "SECRET/ASIA");
    await store.directory.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
    await store.directory.addUser({ handle: "alice", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "user" });
    for (const [handle, dir] of [
      ["olga", olgaDir],
      ["alice", join(profiles, "alice")],
    ] as const) {
      const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
      await ValiseClient.enroll({
        serverUrl: url,
        code: enrollmentCode,
        deviceName: "laptop",
        store: new FileKeyStore(dir),
        pinOnFirstUse: false,
      });
    }
    assert.ok((await checkpointed()) >= 4, "a few audit events to export");
  });

  after(async () => {
    await app?.close();
    await store?.close();
    await db?.dispose();
    rmSync(profiles, { recursive: true, force: true });
  });

  test("entries, proofs and the signed checkpoint verify with no server; any altered byte fails", async () => {
    await checkpointed();
    const dir = mkdtempSync(join(tmpdir(), "valise-audit-offline-"));
    try {
      const file = join(dir, "audit-2-4.json");
      const ex = await cli(
        "audit",
        "export",
        "--profile",
        olgaDir,
        "--log-key",
        key.vkey,
        "--out",
        file,
        "--from",
        "2",
        "--to",
        "4",
        "--json",
      );
      assert.equal(ex.code, 0, ex.stderr);
      assert.deepEqual((JSON.parse(ex.stdout) as { from: number; to: number }).from, 2);
      // The investigator's machine: no profile, no server (the server is not asked: any URL would do).
      const ok = await cli("audit", "verify", "--offline", file, "--log-key", key.vkey, "--json");
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      const v = JSON.parse(ok.stdout) as { ok: boolean; from: number; to: number; entries: number; origin: string };
      assert.deepEqual([v.ok, v.from, v.to, v.entries], [true, 2, 4, 2]);
      assert.equal(v.origin, "test.valise.example/audit");
      // The wrong log key, or a witness quorum the checkpoint lacks: not ok.
      const other = loadOrCreateLogKey({
        dataDir: join(dir, "other"),
        origin: "test.valise.example/directory",
        env: {},
      });
      const wrong = await cli("audit", "verify", "--offline", file, "--log-key", other.vkey, "--json");
      assert.equal(wrong.code, 1);
      assert.match(wrong.stdout, /checkpoint does not verify/);
      // Every byte altered in turn (in-process, the same verifier): each copy fails.
      const bytes = readFileSync(file);
      assert.equal(verifyOfflineExport(bytes, key.vkey, []).ok, true);
      for (let i = 0; i < bytes.length; i++) {
        const copy = Uint8Array.from(bytes);
        copy[i] = copy[i]! ^ 0x01;
        const r = verifyOfflineExport(copy, key.vkey, []);
        assert.equal(
          r.ok,
          false,
          `byte ${i} altered (${JSON.stringify(String.fromCharCode(bytes[i]!))}) still verifies`,
        );
      }
      assert.equal(verifyOfflineExport(bytes.subarray(0, bytes.length - 1), key.vkey, []).ok, false, "truncated");
      // An entry with a valid proof moved to another index, and a signature line added by an unknown key: refused.
      const f = JSON.parse(bytes.toString("utf8")) as { entries: { index: number }[]; checkpoint: string };
      f.entries[0]!.index = 3;
      assert.equal(verifyOfflineExport(Buffer.from(`${JSON.stringify(f)}\n`), key.vkey, []).ok, false);
      // The whole log by default.
      const all = join(dir, "all.json");
      assert.equal((await cli("audit", "export", "--profile", olgaDir, "--log-key", key.vkey, "--out", all)).code, 0);
      const whole = verifyOfflineExport(readFileSync(all), key.vkey, []);
      assert.ok(whole.ok && whole.from === 0 && whole.to === whole.size, JSON.stringify(whole));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
