/**
 * Issue 19 part 6, audit-log retention by segments that stay verifiable: `valise admin audit prune --export FILE`
 * drops the entries of an offline export from the database only when the file verifies with the log key, holds this
 * log's very entries and leaves no unexported gap; afterwards `valise audit verify` still proves the whole log (the
 * pruned prefix by its tree hashes), the pruned segment's file still verifies offline, and a later segment exported
 * from the pruned log does too. An operator who marks entries as pruned in the database without the log recording
 * a prune is caught by the officer's verify. Also `valise admin retention set/list/run` as a user runs them.
 * SQLite and PostgreSQL; the CLI as separate processes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ValiseClient } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { buildApp, loadOrCreateLogKey, openStore, protocolServerMls, type LogKey, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import type { FastifyInstance } from "fastify";
import { parseCheckpoint } from "@valise/core";
import { buildOfflineExport } from "../src/audit-offline.js";
import { auditPrune } from "../src/retention-commands.js";

interface ExportShape {
  checkpoint: string;
}

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));

for (const kind of DATABASE_KINDS)
  describe(`audit prune and retention commands (${kind})`, { timeout: 240_000 }, () => {
    let db: TestDb;
    let store: Store;
    let app: FastifyInstance;
    let key: LogKey;
    const profiles = mkdtempSync(join(tmpdir(), "valise-audit-prune-"));
    const olgaDir = join(profiles, "olga");

    function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
      const env: NodeJS.ProcessEnv = { ...process.env };
      if (db.databaseUrl) env.VALISE_DATABASE_URL = db.databaseUrl;
      else delete env.VALISE_DATABASE_URL;
      return new Promise((resolve) => {
        execFile(process.execPath, [CLI, ...args], { timeout: 60_000, env }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    }

    /** Waits until the latest checkpoint covers the log and the detector has read it all. */
    async function settled(): Promise<number> {
      for (let i = 0; i < 500; i++) {
        const size = await store.audit.size();
        const cp = (await store.audit.latestCheckpoint())?.size ?? -1;
        const det = await store.handle.db.selectFrom("detect_state").select("next_index").executeTakeFirst();
        if (cp >= size && Number(det?.next_index ?? 0) >= size) return size;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error("not settled");
    }

    /** The log's entries up to the export's checkpoint (before any prune). */
    async function allEntries(e: ExportShape): Promise<Uint8Array[]> {
      const text = e.checkpoint.slice(0, e.checkpoint.indexOf("\n\n") + 1);
      return store.audit.entries(0, parseCheckpoint(text).size);
    }

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      key = loadOrCreateLogKey({ dataDir: db.dataDir, origin: "test.valise.example/directory", env: {} });
      ({ app } = await buildApp({ store, mls: protocolServerMls, logKey: key, checkpointIntervalMs: 20 }));
      const url = await app.listen({ port: 0, host: "127.0.0.1" });
      await store.directory.addUnit("HQ/SEC", "SECRET");
      await store.directory.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET", role: "officer" });
      const { enrollmentCode } = await store.directory.newEnrollmentCode("olga");
      await ValiseClient.enroll({
        serverUrl: url,
        code: enrollmentCode,
        deviceName: "laptop",
        store: new FileKeyStore(olgaDir),
        pinOnFirstUse: false,
      });
    });

    after(async () => {
      await app?.close();
      await store?.close();
      await db?.dispose();
      rmSync(profiles, { recursive: true, force: true });
    });

    test("prune an exported segment: the log still verifies, old and new segments verify offline", async () => {
      const dir = mkdtempSync(join(tmpdir(), "valise-audit-seg-"));
      try {
        await settled();
        const seg1 = join(dir, "seg1.json");
        const ex = await cli("audit", "export", "--profile", olgaDir, "--out", seg1, "--to", "4", "--json");
        assert.equal(ex.code, 0, ex.stderr);
        // Not a gap: a segment starting after the pruned point (here 0) is refused, and so is an altered file
        // (in-process: the same function the command runs).
        const seg1Bytes = readFileSync(seg1);
        const e = JSON.parse(seg1Bytes.toString("utf8")) as ExportShape;
        const gapFile = join(dir, "gap.json");
        writeFileSync(gapFile, buildOfflineExport(e.checkpoint, await allEntries(e), 2, 4));
        await assert.rejects(auditPrune(store, gapFile, key.vkey, true), /never exported/);
        const altered = join(dir, "altered.json");
        writeFileSync(altered, seg1Bytes.toString("utf8").replace(/"index":1,/, '"index":1, '));
        await assert.rejects(auditPrune(store, altered, key.vkey, true), /does not verify/);
        assert.equal((await store.audit.pruned()).before, 0, "nothing pruned by refused files");

        const pr = await cli("admin", "--data", db.dataDir, "audit", "prune", "--export", seg1, "--json");
        assert.equal(pr.code, 0, pr.stderr);
        assert.deepEqual(JSON.parse(pr.stdout).prunedBefore, 4);
        assert.equal((await store.audit.entries(0, 4)).length, 0, "entries 0…3 are gone from the database");
        assert.equal((await store.audit.pruned()).before, 4);

        // The officer's whole-log verification still passes (the prefix by its hashes).
        await settled();
        const v = await cli("audit", "verify", "--profile", olgaDir, "--json");
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const vj = JSON.parse(v.stdout) as { ok: boolean; prunedBefore: number };
        assert.deepEqual([vj.ok, vj.prunedBefore], [true, 4]);
        // The pruned segment's file verifies offline, as before the prune.
        const off = await cli("audit", "verify", "--offline", seg1, "--log-key", key.vkey, "--json");
        assert.equal(off.code, 0, off.stdout);
        // A later segment, exported from the pruned log, verifies offline; one reaching into the pruned part is refused.
        const seg3 = join(dir, "seg3.json");
        const e3 = await cli("audit", "export", "--profile", olgaDir, "--out", seg3, "--from", "4", "--json");
        assert.equal(e3.code, 0, e3.stderr);
        const off3 = await cli("audit", "verify", "--offline", seg3, "--log-key", key.vkey, "--json");
        assert.equal(off3.code, 0, off3.stdout);
        assert.equal((JSON.parse(off3.stdout) as { from: number }).from, 4);
        const early = await cli("audit", "export", "--profile", olgaDir, "--out", join(dir, "x.json"), "--from", "1");
        assert.notEqual(early.code, 0);
        assert.match(early.stderr, /pruned/);

        // The operator edits the database: marks more entries pruned, with no audit.prune recording it.
        await settled();
        const size = await store.audit.size();
        // (the storage's delete, without the export check or the audit.prune event the command appends first)
        await store.audit.pruneBefore(6);
        const caught = await cli("audit", "verify", "--profile", olgaDir, "--json");
        assert.equal(caught.code, 1, caught.stdout);
        assert.match(caught.stdout, /records no audit.prune/);
        assert.ok(size > 6);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(
      "valise admin retention set / list / run / remove",
      { skip: kind === "postgres" && "SQLite only" },
      async () => {
        const set = await cli("admin", "--data", db.dataDir, "retention", "set", "HQ/SEC", "--keep", "365d", "--json");
        assert.equal(set.code, 0, set.stderr);
        assert.deepEqual(JSON.parse(set.stdout).keep, "365d");
        const lbl = await cli("admin", "--data", db.dataDir, "retention", "set", "--label", "SECRET", "--keep", "30d");
        assert.equal(lbl.code, 0, lbl.stderr);
        const noKeep = await cli("admin", "--data", db.dataDir, "retention", "set", "HQ/SEC");
        assert.equal(noKeep.code, 2);
        const list = await cli("admin", "--data", db.dataDir, "retention", "list", "--json");
        assert.deepEqual(
          (JSON.parse(list.stdout) as { rules: { scope: string; name: string; keep: string }[] }).rules.map(
            (r) => `${r.scope}:${r.name}=${r.keep}`,
          ),
          ["label:SECRET=30d", "unit:HQ/SEC=365d"],
        );
        const run = await cli("admin", "--data", db.dataDir, "retention", "run", "--json");
        assert.equal(run.code, 0, run.stderr);
        assert.equal((JSON.parse(run.stdout) as { messages: number }).messages, 0);
        const rm = await cli("admin", "--data", db.dataDir, "retention", "remove", "--label", "SECRET");
        assert.equal(rm.code, 0, rm.stderr);
        assert.equal((await store.retention.rules()).length, 1);
      },
    );
  });
