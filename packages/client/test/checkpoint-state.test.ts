/**
 * Issue 13 finding 1, below the CLI: the consistency rule against the last accepted checkpoint (requireExtends), the
 * freshness rule over cosignature timestamps (core checkpointFreshness), and client.audit's memory of the audit log
 * against a scripted server with an injected clock: rollback and fork refused, a replay of the same tree with older
 * cosignatures keeps the newer proof, a checkpoint ages into staleness as the clock moves, and the state lives in an
 * object the profile saves (a second AuditLog over the same state refuses the replay, as a new process would).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  auditLogOrigin,
  checkpointFreshness,
  consistencyProof,
  cosignatureSigner,
  formatCheckpoint,
  formatCosignatureVerifierKey,
  generateNoteKey,
  isValiseError,
  leafHash,
  leafHashReader,
  parseNoteSignerKey,
  parseVerifierKeyParts,
  rootFromLeafHashes,
  signNote,
  toBase64,
  utf8,
  type Clock,
} from "@valise/core";
import { AuditLog, checkpointRefusal, requireExtends, type AuditLogState, type AuditTransport } from "../src/index.js";

const leaves = Array.from({ length: 20 }, (_, i) => leafHash(utf8(`event ${i}`)));
const root = (n: number) => rootFromLeafHashes(leaves.slice(0, n));
const proof = async (from: number, to: number) => consistencyProof(leafHashReader(leaves), from, to);
const accepted = (n: number) => ({ size: n, rootHash: toBase64(root(n)) });

test("requireExtends: smaller is a rollback, same size other root a fork, larger needs a consistency proof", async () => {
  await requireExtends("x log", null, { size: 3, rootHash: root(3) }, proof); // nothing accepted yet
  await requireExtends("x log", accepted(7), { size: 7, rootHash: root(7) }, proof);
  await requireExtends("x log", accepted(7), { size: 12, rootHash: root(12) }, proof);
  const refusedAs = (kind: string, re: RegExp) => (e: unknown) =>
    isValiseError(e) && e.code === "log_not_verified" && checkpointRefusal(e) === kind && re.test(e.message);
  await assert.rejects(
    requireExtends("x log", accepted(7), { size: 5, rootHash: root(5) }, proof),
    refusedAs("rollback", /^x log checkpoint refused: rollback — the server showed size 5, .* accepted size 7$/),
  );
  await assert.rejects(
    requireExtends("x log", accepted(7), { size: 7, rootHash: root(6) }, proof),
    refusedAs("fork", /fork — a different root at size 7/),
  );
  // A larger tree with another history: the honest proof does not verify, nor does an empty or garbage one.
  const other = rootFromLeafHashes([...leaves.slice(0, 6), leafHash(utf8("forged")), ...leaves.slice(7, 12)]);
  for (const p of [proof, async () => [], async () => [new Uint8Array(32)], async () => [new Uint8Array(5)]])
    await assert.rejects(
      requireExtends("x log", accepted(7), { size: 12, rootHash: other }, p),
      refusedAs("fork", /size 12 does not extend the accepted size 7 \(consistency proof fails\)/),
    );
});

test("checkpointFreshness: the quorum-th newest timestamp counts; future ones do not; no quorum proves nothing", () => {
  const now = 1_800_000_000_000; // ms
  const s = now / 1000;
  const at = (...ts: number[]) => ts.map((timestamp) => ({ timestamp }));
  assert.deepEqual(checkpointFreshness(at(s - 30, s - 10), 2, now, 600), {
    proven: true,
    cosignedAt: s - 30,
    age: 30,
    maxAge: 600,
    stale: false,
  });
  // One witness fresh, one an hour old: with quorum 2 only the older vouches for the whole quorum.
  assert.equal(checkpointFreshness(at(s - 5, s - 3600), 2, now, 600).stale, true);
  assert.equal(checkpointFreshness(at(s - 5, s - 3600), 1, now, 600).stale, false);
  assert.equal(checkpointFreshness(at(s - 601), 1, now, 600).stale, true);
  assert.equal(checkpointFreshness(at(s - 600), 1, now, 600).stale, false);
  // A timestamp far in the future (a witness clock set forward) counts for nothing; a small skew is tolerated.
  assert.deepEqual(
    [checkpointFreshness(at(s + 86_400), 1, now, 600).stale, checkpointFreshness(at(s + 86_400), 1, now).age],
    [true, null],
  );
  assert.equal(checkpointFreshness(at(s + 30), 1, now, 600).age, 0);
  assert.deepEqual(checkpointFreshness(at(s - 99_999), 0, now, 600), {
    proven: false,
    cosignedAt: null,
    age: null,
    maxAge: 600,
    stale: false,
  });
});

test("client.audit remembers the accepted checkpoint, refuses rollback and fork, and reports staleness", async () => {
  const ORIGIN = "unit.valise.example/directory";
  const logKey = generateNoteKey(ORIGIN);
  const logSigner = parseNoteSignerKey(logKey.skey);
  let nowMs = 1_800_000_000_000;
  const clock: Clock = { now: () => nowMs };
  const wit = [0, 1].map((i) => {
    const name = `w${i}.unit.test`;
    const sk = new Uint8Array(randomBytes(32));
    const vkey = formatCosignatureVerifierKey(name, parseVerifierKeyParts(generateNoteKey(name, sk).vkey).publicKey);
    return { vkey, at: (ms: number) => cosignatureSigner(name, sk, { now: () => ms }) };
  });
  const note = (size: number, cosignedMs: number, rootHash = root(size)) =>
    signNote(formatCheckpoint({ origin: auditLogOrigin(ORIGIN), size, rootHash, extensions: [] }), [
      logSigner,
      ...wit.map((w) => w.at(cosignedMs)),
    ]);
  let serve = note(5, nowMs);
  const t = {
    auditCheckpoint: async () => serve,
    auditConsistencyProof: proof,
  } as unknown as AuditTransport;
  const state: AuditLogState = { checkpoints: {} };
  let saves = 0;
  const audit = () =>
    new AuditLog(t, () => ({ logKey: logKey.vkey, witnesses: wit.map((w) => w.vkey), quorum: 2 }), undefined, {
      state: () => state,
      save: async () => void saves++,
      now: () => clock.now(),
      maxCheckpointAgeMs: 600_000,
    });

  const first = await audit().checkpoint();
  assert.deepEqual([first.checkpoint.size, first.acceptedSize, first.freshness.stale, saves], [5, null, false, 1]);
  assert.equal(state.checkpoints[auditLogOrigin(ORIGIN)]!.size, 5);

  // The log grows to 9: accepted (consistency proof), remembered, saved.
  nowMs += 60_000;
  serve = note(9, nowMs);
  const grown = await audit().checkpoint();
  assert.deepEqual([grown.checkpoint.size, grown.acceptedSize, grown.freshness.age, saves], [9, 5, 0, 2]);

  // The same tree replayed with hour-old cosignatures: consistent, and not stale — this device holds a newer proof.
  serve = note(9, nowMs - 3_600_000);
  const replay = await audit().checkpoint();
  assert.deepEqual([replay.freshness.stale, replay.freshness.cosignedAt, saves], [false, nowMs / 1000, 2]);

  // Time passes with no new cosignature: the same checkpoint ages into staleness.
  nowMs += 11 * 60_000;
  const aged = await audit().checkpoint();
  assert.deepEqual([aged.freshness.stale, aged.freshness.age], [true, 660]);

  // A fresh re-cosignature of the same tree makes it fresh again (and is remembered).
  serve = note(9, nowMs);
  assert.equal((await audit().checkpoint()).freshness.stale, false);
  assert.equal(saves, 3);

  // Rollback to 5 and a fork at 9, to a new AuditLog over the saved state (a new process): refused, state kept.
  for (const [n, r, kind] of [
    [note(5, nowMs), /rollback — the server showed size 5, this device already accepted size 9/, "rollback"],
    [note(9, nowMs, root(8)), /fork — a different root at size 9/, "fork"],
    [note(14, nowMs, root(13)), /fork — size 14 does not extend the accepted size 9/, "fork"],
  ] as const) {
    serve = n;
    await assert.rejects(audit().checkpoint(), (e) => checkpointRefusal(e) === kind && r.test(String(e)));
  }
  assert.equal(state.checkpoints[auditLogOrigin(ORIGIN)]!.size, 9);
  assert.equal(saves, 3);
});
