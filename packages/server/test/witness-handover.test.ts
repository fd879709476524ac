/**
 * Witnesses follow a log-key hand-over (issue 19), over HTTP on 127.0.0.1:
 * - the witness takes a hand-over signed by the key it trusts (and the new key) and from then on cosigns the new
 *   key's checkpoints and refuses the old key's (a rollback to the old key: 403), also after a restart; a forged
 *   hand-over (not signed by the trusted key) and one below what it already cosigned under the old key are refused;
 * - end to end: a server publishing through the witness, `rotateLogKey` with the server stopped, the server started
 *   with the new key: it hands the rotation to the witness and the next checkpoint, signed by the new key, is
 *   cosigned and published (both logs), on SQLite and PostgreSQL.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  auditLogOrigin,
  consistencyProof,
  formatCheckpoint,
  generateNoteKey,
  leafHash,
  leafHashReader,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  rootFromLeafHashes,
  signKeyHandover,
  signNote,
  utf8,
  verifyCheckpointQuorum,
  type NoteSigner,
} from "@valise/core";
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
  rotateLogKey,
  submitToWitness,
  type WitnessEndpoint,
  type WitnessKey,
} from "../src/index.js";
import { DATABASE_KINDS, freshDb } from "./helpers/databases.js";

const ORIGIN = "rot.valise.example/directory";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mk = () => {
  const k = generateNoteKey(ORIGIN);
  return { vkey: k.vkey, signer: parseNoteSignerKey(k.skey), verifier: parseNoteVerifierKey(k.vkey) };
};

async function witnessOn(
  key: WitnessKey,
  trusted: ReturnType<typeof mk>,
  dir: string,
): Promise<{ app: FastifyInstance; state: WitnessStateDir; endpoint: WitnessEndpoint }> {
  const state = new WitnessStateDir(dir);
  const app = await buildWitnessApp({
    key,
    logKeys: [trusted.verifier, { origin: auditLogOrigin(ORIGIN), key: trusted.verifier }],
    state,
  });
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, state, endpoint: parseWitnessSpec(`${url}=${key.vkey}`) };
}

test("a witness follows a hand-over signed by the key it trusts, and only that", async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-wh-"));
  const wkey = generateWitnessKey("w.rot.test").key;
  const a = mk();
  const b = mk();
  let w = await witnessOn(wkey, a, dir);
  const leaves = Array.from({ length: 8 }, (_, i) => leafHash(utf8(`e${i}`)));
  const note = (size: number, s: NoteSigner) =>
    signNote(
      formatCheckpoint({ origin: ORIGIN, size, rootHash: rootFromLeafHashes(leaves.slice(0, size)), extensions: [] }),
      [s],
    );
  const proof = (from: number, to: number) =>
    from === 0 ? [] : consistencyProof(leafHashReader(leaves.slice(0, to)), from, to);
  const submit = (from: number, to: number, s: NoteSigner) =>
    submitToWitness(w.endpoint, from, proof(from, to), note(to, s), { timeoutMs: 5000 });
  const post = async (body: string) => {
    const r = await fetch(`${w.endpoint.url}/key-handover`, { method: "POST", body });
    return { status: r.status, text: await r.text() };
  };
  const ho = (from: ReturnType<typeof mk>, to: ReturnType<typeof mk>, d: number, by = from) =>
    signKeyHandover(
      { origin: ORIGIN, oldKey: from.vkey, newKey: to.vkey, directorySize: d, auditSize: 0 },
      by.signer,
      to.signer,
    );
  try {
    assert.equal((await submit(0, 3, a.signer)).kind, "cosigned");
    // Forged: claims to come from A, signed by X (and the new key C).
    const x = mk();
    const c = mk();
    assert.equal((await post(ho(a, c, 3, x))).status, 403);
    // Below what this witness cosigned under A: the old key signed past its own hand-over.
    assert.equal((await post(ho(a, b, 2))).status, 422);
    // The real one, then again (idempotent).
    assert.deepEqual(await post(ho(a, b, 3)), { status: 200, text: "followed\n" });
    assert.deepEqual(await post(ho(a, b, 3)), { status: 200, text: "already followed\n" });
    // A rollback to the old key is refused; the new key's checkpoints are cosigned.
    const old = await submit(3, 4, a.signer);
    assert.ok(old.kind === "failed" && /HTTP 403/.test(old.reason), JSON.stringify(old));
    assert.equal((await submit(3, 4, b.signer)).kind, "cosigned");
    // A hand-over from a key this witness never trusted changes nothing.
    assert.equal((await post(ho(c, x, 4))).status, 403);
    // After a restart (configured with the old key still), the followed hand-over holds.
    await w.app.close();
    w.state.close();
    w = await witnessOn(wkey, a, dir);
    const again = await submit(4, 5, a.signer);
    assert.ok(again.kind === "failed" && /HTTP 403/.test(again.reason), JSON.stringify(again));
    assert.equal((await submit(4, 5, b.signer)).kind, "cosigned");
  } finally {
    await w.app.close();
    w.state.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const kind of DATABASE_KINDS)
  describe(`log-key rotation end to end on ${kind}`, () => {
    test("the restarted server hands the rotation to its witness; the new key's checkpoints are published", async () => {
      const db = await freshDb(kind);
      const wdir = mkdtempSync(join(tmpdir(), "valise-wh-"));
      const wkey = generateWitnessKey("w.rot.test").key;
      const keyA = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
      const a = { vkey: keyA.vkey, signer: keyA.signer, verifier: parseNoteVerifierKey(keyA.vkey) };
      const w = await witnessOn(wkey, a, wdir);
      const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      const serve = (logKey: typeof keyA) =>
        buildApp({
          store,
          mls: protocolServerMls,
          logKey,
          checkpointIntervalMs: 20,
          witnesses: [w.endpoint],
          witnessTimeoutMs: 2000,
          witnessRetryMs: 50,
        });
      const published = async (log: string) => (await new CosignedCheckpoints(store.handle.db, log).latest())!;
      const until = async (what: string, f: () => Promise<boolean>) => {
        for (let i = 0; !(await f()); i++) {
          if (i > 600) throw new Error(`timed out: ${what}`);
          await sleep(20);
        }
      };
      try {
        let { app } = await serve(keyA);
        await store.directory.addUnit("HQ/A", "SECRET");
        const sizeA = await store.directory.log.size();
        await until("published under A", async () => ((await published("directory"))?.size ?? 0) >= sizeA);
        await app.close();

        const { skey } = generateNoteKey(ORIGIN);
        const keyB = loadOrCreateLogKey({ dataDir: db.dataDir, env: { VALISE_LOG_KEY: skey } });
        const h = await rotateLogKey({
          db: store.handle.db,
          directory: store.directory.log,
          audit: store.audit,
          oldKey: keyA,
          newKey: keyB,
          now: Date.now(),
        });
        assert.equal(h.directorySize, sizeA);
        // The old key cannot start the server any more.
        await assert.rejects(serve(keyA), /not by the configured log key/);
        ({ app } = await serve(keyB));
        await store.directory.addUnit("HQ/B", "SECRET");
        const sizeB = await store.directory.log.size();
        const vB = parseNoteVerifierKey(keyB.vkey);
        await until("published under B", async () => ((await published("directory"))?.size ?? 0) >= sizeB);
        const q = verifyCheckpointQuorum((await published("directory")).note, vB, [wkey.verifier], 1);
        assert.ok(q.ok, q.ok ? "" : q.reason);
        const auditSize = await store.audit.size();
        await until("audit published under B", async () => ((await published("audit"))?.size ?? 0) >= auditSize);
        const qa = verifyCheckpointQuorum((await published("audit")).note, vB, [wkey.verifier], 1, {
          origin: auditLogOrigin(ORIGIN),
        });
        assert.ok(qa.ok, qa.ok ? "" : qa.reason);
        const served = (await app.inject({ method: "GET", url: "/v1/log/directory/key-handovers" })).json<{
          handovers: string[];
        }>();
        assert.deepEqual(served.handovers, [h.note]);
        await app.close();
      } finally {
        await store.close();
        await w.app.close();
        w.state.close();
        await db.dispose();
        rmSync(wdir, { recursive: true, force: true });
      }
    });
  });
