/**
 * Witnessed publication on every database: the server submits each new checkpoint to its witnesses (real HTTP on
 * 127.0.0.1, in-process witness apps), learns a witness's cosigned size from its 409, and publishes at
 * GET /v1/log/directory/checkpoint only checkpoints carrying the quorum of cosignatures — the published note verifies
 * with verifyCheckpointQuorum. A checkpoint short of quorum is not published; the previous one stays.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  consistencyProof,
  formatCheckpoint,
  generateNoteKey,
  leafHash,
  leafHashReader,
  rootFromLeafHashes,
  signNote,
  utf8,
  parseCheckpoint,
  parseNoteVerifierKey,
  verifyCheckpointQuorum,
  auditLogOrigin,
  type NoteVerifier,
} from "@valise/core";
import {
  CosignedCheckpoints,
  WitnessStateDir,
  startWitnessPublisher,
  buildApp,
  buildWitnessApp,
  generateWitnessKey,
  loadOrCreateLogKey,
  openStore,
  parseWitnessSpec,
  protocolServerMls,
  submitToWitness,
  type LogKey,
  type Store,
  type WitnessEndpoint,
  type WitnessAppOptions,
  type WitnessKey,
} from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const ORIGIN = "test.valise.example/directory";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunningWitness {
  key: WitnessKey;
  endpoint: WitnessEndpoint;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A witness app on 127.0.0.1 that can be stopped and restarted on the same port and state directory. */
async function runWitness(name: string, logKeys: WitnessAppOptions["logKeys"], dir: string): Promise<RunningWitness> {
  const key = generateWitnessKey(name).key;
  let app: FastifyInstance | undefined;
  let state: WitnessStateDir | undefined;
  const w: RunningWitness = {
    key,
    endpoint: undefined as unknown as WitnessEndpoint,
    port: 0,
    async start() {
      state = new WitnessStateDir(dir);
      app = await buildWitnessApp({ key, logKeys, state });
      await app.listen({ port: w.port, host: "127.0.0.1" });
      const a = app.server.address();
      w.port = typeof a === "object" && a ? a.port : 0;
      w.endpoint = parseWitnessSpec(`http://127.0.0.1:${w.port}=${key.vkey}`);
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

for (const kind of DATABASE_KINDS) {
  describe(`witnessed checkpoints on ${kind}`, () => {
    let db: TestDb;
    let store: Store;
    let logKey: LogKey;
    let logV: NoteVerifier;
    let tmp: string;
    const apps: FastifyInstance[] = [];
    const witnesses: RunningWitness[] = [];
    let units = 0;

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      logKey = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
      logV = parseNoteVerifierKey(logKey.vkey);
      tmp = mkdtempSync(join(tmpdir(), "valise-wpub-"));
    });
    after(async () => {
      for (const a of apps) await a.close();
      for (const w of witnesses) await w.stop();
      await store.close();
      await db.dispose();
      rmSync(tmp, { recursive: true, force: true });
    });

    async function server(ws: RunningWitness[], quorum: number): Promise<FastifyInstance> {
      const { app } = await buildApp({
        store,
        mls: protocolServerMls,
        logKey,
        checkpointIntervalMs: 20,
        witnesses: ws.map((w) => w.endpoint),
        witnessQuorum: quorum,
        witnessTimeoutMs: 2000,
        witnessRetryMs: 50,
      });
      apps.push(app);
      return app;
    }
    const grow = async (n = 1) => {
      for (let i = 0; i < n; i++) await store.directory.addUnit(`HQ/U-${units++}`);
    };
    async function published(app: FastifyInstance): Promise<string | undefined> {
      const r = await app.inject({ method: "GET", url: "/v1/log/directory/checkpoint" });
      if (r.statusCode === 404) return undefined;
      assert.equal(r.statusCode, 200, r.body);
      return r.body;
    }
    const sizeOf = (note: string) => parseCheckpoint(note.slice(0, note.lastIndexOf("\n\n") + 1)).size;
    async function waitPublished(app: FastifyInstance, size: number): Promise<string> {
      for (let i = 0; i < 400; i++) {
        const note = await published(app);
        if (note && sizeOf(note) === size) return note;
        await sleep(20);
      }
      throw new Error(`no checkpoint of size ${size} published; last: ${(await published(app)) ?? "none"}`);
    }

    test("publishes only with quorum cosignatures; short of quorum keeps serving the previous one", async () => {
      const logKeys = [logV];
      const w1 = await runWitness("witness.test/w1", logKeys, join(tmp, "w1"));
      const w2 = await runWitness("witness.test/w2", logKeys, join(tmp, "w2"));
      witnesses.push(w1, w2);
      // w1 has already cosigned the first checkpoint (as if for another server node): the publisher starts from
      // size 0 for it, gets 409 with the real size, and retries from there.
      await grow(2);
      const first = await store.directory.log.signCheckpoint(logKey.origin, logKey.signer);
      assert.ok(first);
      const pre = await submitToWitness(w1.endpoint, 0, [], first.note, { timeoutMs: 2000 });
      assert.equal(pre.kind, "cosigned");

      const app = await server([w1, w2], 2);
      const verifiers = [w1.key.verifier, w2.key.verifier];
      let size = await store.directory.log.size();
      let note = await waitPublished(app, size);
      let q = verifyCheckpointQuorum(note, logV, verifiers, 2);
      assert.ok(q.ok, q.ok ? "" : q.reason);
      assert.deepEqual(q.cosigners.map((c) => c.name).sort(), ["witness.test/w1", "witness.test/w2"]);

      // Growth is published with both cosignatures (consistency proofs from each witness's size).
      await grow(3);
      size = await store.directory.log.size();
      note = await waitPublished(app, size);
      assert.ok(verifyCheckpointQuorum(note, logV, verifiers, 2).ok);

      // One witness down: the log keeps growing and signing, but nothing short of quorum is published.
      await w2.stop();
      const before = size;
      await grow(2);
      size = await store.directory.log.size();
      for (let i = 0; i < 200 && (await store.directory.log.latestCheckpoint())!.size < size; i++) await sleep(10);
      assert.equal((await store.directory.log.latestCheckpoint())!.size, size, "the log signed the new checkpoint");
      await sleep(400); // several publication attempts
      const stale = await published(app);
      assert.ok(stale);
      assert.equal(sizeOf(stale), before);
      assert.ok(verifyCheckpointQuorum(stale, logV, verifiers, 2).ok);
      const onlyOne = verifyCheckpointQuorum(stale, logV, [w1.key.verifier], 1);
      assert.ok(onlyOne.ok);

      // The witness comes back (same port, same state): publication resumes from its size.
      await w2.start();
      note = await waitPublished(app, size);
      q = verifyCheckpointQuorum(note, logV, verifiers, 2);
      assert.ok(q.ok, q.ok ? "" : q.reason);
      // An attacker-supplied witness list cannot lower the bar: three required of these two never verifies.
      assert.equal(verifyCheckpointQuorum(note, logV, verifiers, 3).ok, false);
      await app.close();
      apps.pop();
    });

    test("a witness that does not trust this log never cosigns: quorum 2 publishes nothing new, quorum 1 does", async () => {
      const w1 = witnesses[0]!;
      const other = parseNoteVerifierKey(generateNoteKey(ORIGIN).vkey); // same origin, another key
      const bad = await runWitness("witness.test/bad", [other], join(tmp, "bad"));
      witnesses.push(bad);
      const strict = await server([w1, bad], 2);
      const before = await published(strict);
      await grow(1);
      const size = await store.directory.log.size();
      await sleep(400);
      assert.equal(await published(strict), before, "nothing new published without quorum");
      await strict.close();
      apps.splice(apps.indexOf(strict), 1);

      const lenient = await server([w1, bad], 1);
      const note = await waitPublished(lenient, size);
      const q = verifyCheckpointQuorum(note, logV, [w1.key.verifier, bad.key.verifier], 1);
      assert.ok(q.ok && q.cosigners.length === 1 && q.cosigners[0]!.name === "witness.test/w1");
    });

    test("any log can be witnessed: another origin signed by the directory key (the audit log's case)", async () => {
      const auditOrigin = "test.valise.example/audit";
      const w = await runWitness("witness.test/audit", [{ origin: auditOrigin, key: logV }], join(tmp, "audit"));
      witnesses.push(w);
      const leaves: Uint8Array[] = [];
      let latest: { size: number; note: string } | null = null;
      const grow = (n: number) => {
        for (let i = 0; i < n; i++) leaves.push(leafHash(utf8(`event ${leaves.length}`)));
        const cp = { origin: auditOrigin, size: leaves.length, rootHash: rootFromLeafHashes(leaves), extensions: [] };
        latest = { size: leaves.length, note: signNote(formatCheckpoint(cp), [logKey.signer]) };
      };
      const warnings: string[] = [];
      const store2 = new CosignedCheckpoints(store.handle.db, "audit-test");
      const publisher = await startWitnessPublisher({
        store: store2,
        latest: async () => latest,
        consistencyProof: async (from, to) => consistencyProof(leafHashReader(leaves), from, to),
        logVerifier: logV,
        origin: auditOrigin,
        witnesses: [w.endpoint],
        quorum: 1,
        now: () => Date.now(),
        intervalMs: 1_000_000, // driven by hand below
        warn: (msg) => void warnings.push(msg),
      });
      try {
        grow(3);
        assert.equal(await publisher.publishLatest(), 3, warnings.join("; "));
        grow(5);
        assert.equal(await publisher.publishLatest(), 8, warnings.join("; "));
        const p = await store2.latest();
        const q = verifyCheckpointQuorum(p!.note, logV, [w.key.verifier], 1, { origin: auditOrigin });
        assert.ok(q.ok && q.checkpoint.size === 8);
        assert.equal((await new CosignedCheckpoints(store.handle.db, "directory").latest())?.note === p!.note, false);
      } finally {
        await publisher.stop();
      }
    });

    test("configuration errors: quorum above the number of witnesses, witnesses without a log key", async () => {
      const w = [witnesses[0]!.endpoint];
      await assert.rejects(
        buildApp({ store, mls: protocolServerMls, logKey, witnesses: w, witnessQuorum: 2 }),
        /unreachable/,
      );
      await assert.rejects(buildApp({ store, mls: protocolServerMls, witnesses: w }), /log key/);
    });

    test("the audit log is witnessed like the directory log: only quorum-cosigned audit checkpoints are published", async () => {
      const audit = auditLogOrigin(ORIGIN);
      const both = [logV, { origin: audit, key: logV }];
      const a1 = await runWitness("witness.test/a1", both, join(tmp, "a1"));
      const a2 = await runWitness("witness.test/a2", both, join(tmp, "a2"));
      const d1 = await runWitness("witness.test/d1", [logV], join(tmp, "d1")); // knows only the directory log
      witnesses.push(a1, a2, d1);
      await store.directory.addUser({ handle: "auditee", units: [], clearance: "UNCLASSIFIED", role: "user" });
      await store.directory.setClearance("auditee", "RESTRICTED"); // an audited admin action
      const auditSize = await store.audit.size();
      assert.ok(auditSize > 0);
      const auditNote = async (app: FastifyInstance) => {
        const r = await app.inject({ method: "GET", url: "/v1/log/audit/checkpoint" });
        return r.statusCode === 200 ? r.body : undefined;
      };
      const app = await server([a1, a2], 2);
      let note: string | undefined;
      for (let i = 0; i < 400 && !(note && sizeOf(note) >= auditSize); i++) {
        note = await auditNote(app);
        if (!(note && sizeOf(note) >= auditSize)) await sleep(20);
      }
      assert.ok(note && sizeOf(note) >= auditSize, "audit checkpoint published");
      const q = verifyCheckpointQuorum(note, logV, [a1.key.verifier, a2.key.verifier], 2, { origin: audit });
      assert.ok(q.ok, q.ok ? "" : q.reason);
      assert.equal(
        verifyCheckpointQuorum(note, logV, [a1.key.verifier, a2.key.verifier], 3, { origin: audit }).ok,
        false,
      );
      await app.close();
      apps.pop();
      // With a witness that does not know the audit origin in a quorum of 2, audit growth is not published.
      const app2 = await server([a1, d1], 2);
      const before = sizeOf((await auditNote(app2))!);
      await store.directory.setClearance("auditee", "CONFIDENTIAL");
      const grown = await store.audit.size();
      assert.ok(grown > before);
      await sleep(500);
      assert.equal(sizeOf((await auditNote(app2))!), before, "audit checkpoint short of quorum was published");
      await app2.close();
      apps.pop();
    });
  });
}
