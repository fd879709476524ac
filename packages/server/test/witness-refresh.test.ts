/**
 * Freshness of published checkpoints (issue 13 finding 1): clients call a checkpoint stale once its witness quorum's
 * cosignature timestamps are older than their bound, so the server must have its witnesses cosign the published
 * checkpoint again even when the log has not grown. Real witness apps on 127.0.0.1 with their own (frozen, advanced
 * by hand) clocks: after the witnesses' time moves on, the published directory and audit checkpoints keep their size
 * and root but carry newer cosignature timestamps; with a witness down nothing short of quorum replaces them, so
 * they only age, and a client sees them as stale.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  auditLogOrigin,
  checkpointFreshness,
  frozenClock,
  parseNoteVerifierKey,
  verifyCheckpointQuorum,
  type NoteVerifier,
} from "@valise/core";
import {
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
} from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const ORIGIN = "test.valise.example/directory";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of DATABASE_KINDS) {
  describe(`witnesses cosign the published checkpoint again on ${kind}`, () => {
    let db: TestDb;
    let store: Store;
    let logKey: LogKey;
    let logV: NoteVerifier;
    let tmp: string;
    const clock = frozenClock(Date.UTC(2026, 11, 6, 12, 0, 0));
    const witnesses: { key: WitnessKey; endpoint: WitnessEndpoint; app: FastifyInstance; state: WitnessStateDir }[] =
      [];
    let app: FastifyInstance;

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      logKey = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
      logV = parseNoteVerifierKey(logKey.vkey);
      tmp = mkdtempSync(join(tmpdir(), "valise-wrefresh-"));
      for (const name of ["witness.test/r1", "witness.test/r2"]) {
        const key = generateWitnessKey(name).key;
        const state = new WitnessStateDir(join(tmp, name.replace("/", "-")));
        const w = await buildWitnessApp({
          key,
          logKeys: [logV, { origin: auditLogOrigin(ORIGIN), key: logV }],
          state,
          clock,
        });
        await w.listen({ port: 0, host: "127.0.0.1" });
        const a = w.server.address();
        const port = typeof a === "object" && a ? a.port : 0;
        witnesses.push({ key, endpoint: parseWitnessSpec(`http://127.0.0.1:${port}=${key.vkey}`), app: w, state });
      }
      await store.directory.addUnit("HQ/R-1");
      ({ app } = await buildApp({
        store,
        mls: protocolServerMls,
        logKey,
        checkpointIntervalMs: 20,
        witnesses: witnesses.map((w) => w.endpoint),
        witnessQuorum: 2,
        witnessTimeoutMs: 2000,
        witnessRetryMs: 50,
        witnessRefreshMs: 100,
      }));
    });
    after(async () => {
      await app.close();
      for (const w of witnesses) {
        await w.app.close().catch(() => {});
        w.state.close();
      }
      await store.close();
      await db.dispose();
      rmSync(tmp, { recursive: true, force: true });
    });

    const verifiers = () => witnesses.map((w) => w.key.verifier);
    async function served(url: string, origin: string) {
      const r = await app.inject({ method: "GET", url });
      if (r.statusCode !== 200) return undefined;
      const q = verifyCheckpointQuorum(r.body, logV, verifiers(), 2, { origin });
      assert.ok(q.ok, q.ok ? "" : q.reason);
      return { size: q.checkpoint.size, root: q.checkpoint.rootHash, times: q.cosigners.map((c) => c.timestamp) };
    }
    /** Waits until the served checkpoint is cosigned by both witnesses at (or after) `atLeast` (POSIX seconds). */
    async function cosignedSince(url: string, origin: string, atLeast: number) {
      for (let i = 0; i < 300; i++) {
        const s = await served(url, origin);
        if (s && Math.min(...s.times) >= atLeast) return s;
        await sleep(20);
      }
      throw new Error(`${url}: not re-cosigned at ${atLeast}; last ${JSON.stringify(await served(url, origin))}`);
    }

    test("the log does not grow, the witnesses' clock moves on: same size and root, newer cosignatures", async () => {
      for (const [url, origin] of [
        ["/v1/log/directory/checkpoint", ORIGIN],
        ["/v1/log/audit/checkpoint", auditLogOrigin(ORIGIN)],
      ] as const) {
        const t0 = Math.floor(clock.now() / 1000);
        const first = await cosignedSince(url, origin, t0);
        // The witnesses' time moves 20 minutes on (twice the clients' default bound); the directory does not change.
        clock.advance(20 * 60_000);
        const later = await cosignedSince(url, origin, t0 + 20 * 60);
        assert.equal(later.size, first.size, "a re-cosigned checkpoint has the same size");
        assert.deepEqual(later.root, first.root, "…and the same root");
        // A client bounded at 10 minutes, at the witnesses' time, calls it fresh.
        const f = checkpointFreshness(
          later.times.map((timestamp) => ({ timestamp })),
          2,
          clock.now(),
          600,
        );
        assert.deepEqual([f.stale, f.age], [false, 0]);
      }
    });

    test("a witness down: nothing short of quorum replaces the published checkpoint, which only ages", async () => {
      const url = "/v1/log/directory/checkpoint";
      const before = await cosignedSince(url, ORIGIN, Math.floor(clock.now() / 1000));
      await witnesses[1]!.app.close();
      clock.advance(30 * 60_000);
      await sleep(600); // several refresh attempts, each short of quorum
      const after = await served(url, ORIGIN);
      assert.deepEqual(after, before, "the published checkpoint was replaced without a quorum");
      const f = checkpointFreshness(
        after.times.map((timestamp) => ({ timestamp })),
        2,
        clock.now(),
        600,
      );
      assert.equal(f.stale, true);
      assert.ok(f.age! >= 30 * 60, String(f.age));
    });
  });
}
