/**
 * The witness (c2sp.org/tlog-witness add-checkpoint): the pure decision, the wire format, the HTTP app in-process,
 * and its durable state. A witness cosigns valid growth and refuses rollbacks, forks, checkpoints signed by another
 * key and malformed requests — also after a restart on the same state directory.
 */
import { test, describe, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  consistencyProof,
  formatCheckpoint,
  frozenClock,
  generateNoteKey,
  isValiseError,
  leafHash,
  leafHashReader,
  openNote,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  rootFromLeafHashes,
  signNote,
  utf8,
  verifyCheckpointQuorum,
  type NoteVerifier,
} from "@valise/core";
import {
  WitnessStateDir,
  buildWitnessApp,
  cosignAccepted,
  createWitnessKeyFile,
  formatAddCheckpointRequest,
  generateWitnessKey,
  loadWitnessKeyFile,
  originHash,
  parseAddCheckpointRequest,
  parseLogKeySpec,
  parseWitnessKey,
  parseWitnessSpec,
  verifyAddCheckpoint,
  type CosignedState,
} from "../src/index.js";

const ORIGIN = "test.valise.example/directory";

/** A log kept in memory: leaves, signed checkpoints, consistency proofs. */
function memoryLog(origin = ORIGIN, skey = generateNoteKey(origin).skey) {
  const signer = parseNoteSignerKey(skey);
  const leaves: Uint8Array[] = [];
  return {
    signer,
    add(n: number) {
      for (let i = 0; i < n; i++) leaves.push(leafHash(utf8(`entry ${leaves.length} ${Math.random()}`)));
    },
    get size() {
      return leaves.length;
    },
    root(size = leaves.length) {
      return rootFromLeafHashes(leaves.slice(0, size));
    },
    checkpoint(size = leaves.length, root = rootFromLeafHashes(leaves.slice(0, size)), by = signer) {
      return signNote(formatCheckpoint({ origin, size, rootHash: root, extensions: [] }), [by]);
    },
    proof(from: number, to = leaves.length) {
      return from === 0 || from === to ? [] : consistencyProof(leafHashReader(leaves), from, to);
    },
  };
}

function verifierOf(skey: string): NoteVerifier {
  const name = skey.split("+")[2]!;
  const { vkey } = generateNoteKey(name, Buffer.from(skey.split("+").slice(4).join("+"), "base64").subarray(1));
  return parseNoteVerifierKey(vkey);
}

function setup() {
  const { skey } = generateNoteKey(ORIGIN);
  const log = memoryLog(ORIGIN, skey);
  const logs = new Map([[ORIGIN, [verifierOf(skey)]]]);
  let state: CosignedState | undefined;
  const submit = (old: number, proof: Uint8Array[], note: string) => {
    const parsed = parseAddCheckpointRequest(formatAddCheckpointRequest(old, proof, note));
    assert.ok(parsed.ok);
    const v = verifyAddCheckpoint(parsed.value, logs, (o) => (o === ORIGIN ? state : undefined));
    if (v.ok) state = { size: v.checkpoint.size, rootHash: v.checkpoint.rootHash };
    return v;
  };
  return { log, logs, submit, state: () => state };
}

describe("witness decision (pure)", () => {
  test("cosigns the first checkpoint and valid growth; the cosignature verifies", () => {
    const { log, submit } = setup();
    log.add(5);
    const v1 = submit(0, [], log.checkpoint());
    assert.ok(v1.ok);
    const wk = generateWitnessKey("witness.test/w1").key;
    const { response, note } = cosignAccepted(v1, wk.signer(frozenClock(1_700_000_000_000)));
    assert.match(response, /^\u2014 witness\.test\/w1 [A-Za-z0-9+/=]+\n$/);
    assert.ok(openNote(log.checkpoint() + response, [wk.verifier]).ok);
    assert.ok(openNote(note, [wk.verifier]).ok);
    for (const grow of [1, 3, 8, 100]) {
      const old = log.size;
      log.add(grow);
      const v = submit(old, log.proof(old), log.checkpoint());
      assert.ok(v.ok, `growth by ${grow}: ${v.ok ? "" : v.reason}`);
    }
    // The same checkpoint again (same size, same root, empty proof) is fine.
    assert.ok(submit(log.size, [], log.checkpoint()).ok);
  });

  test("size 0: the empty tree is cosigned, any other root is 422", () => {
    const { log, submit } = setup();
    assert.ok(submit(0, [], log.checkpoint(0)).ok);
    const bad = submit(0, [], log.checkpoint(0, new Uint8Array(32).fill(7)));
    assert.equal(bad.ok ? 200 : bad.status, 422);
  });

  test("refuses rollbacks: a stale old size is 409 with the cosigned size, old above the checkpoint is 400", () => {
    const { log, submit } = setup();
    log.add(10);
    assert.ok(submit(0, [], log.checkpoint()).ok);
    const stale = submit(5, log.proof(5, 7), log.checkpoint(7));
    assert.deepEqual(stale.ok ? {} : { status: stale.status, size: stale.size }, { status: 409, size: 10 });
    const fromZero = submit(0, [], log.checkpoint(3));
    assert.deepEqual(fromZero.ok ? {} : { status: fromZero.status, size: fromZero.size }, { status: 409, size: 10 });
    const above = submit(10, [], log.checkpoint(5));
    assert.equal(above.ok ? 200 : above.status, 400);
  });

  test("refuses forks: same size with another root, and a proof that does not verify, are 422", () => {
    const { log, submit, state } = setup();
    log.add(10);
    assert.ok(submit(0, [], log.checkpoint()).ok);
    const fork = submit(10, [], log.checkpoint(10, new Uint8Array(32).fill(1)));
    assert.equal(fork.ok ? 200 : fork.status, 422);
    // A different tree of 13 leaves whose first 10 differ: no proof from our cosigned root can verify.
    const other = memoryLog(ORIGIN, undefined);
    other.add(13);
    const forged = submit(10, other.proof(10), log.checkpoint(13, other.root()));
    assert.equal(forged.ok ? 200 : forged.status, 422);
    // A correct proof with one bit flipped.
    log.add(3);
    const proof = log.proof(10).map((h) => h.slice());
    proof[0]![0]! ^= 1;
    const flipped = submit(10, proof, log.checkpoint());
    assert.equal(flipped.ok ? 200 : flipped.status, 422);
    // A proof from 0 must be empty.
    const { log: l2, submit: s2 } = setup();
    l2.add(4);
    const nonEmpty = s2(0, [new Uint8Array(32)], l2.checkpoint());
    assert.equal(nonEmpty.ok ? 200 : nonEmpty.status, 422);
    assert.equal(state()?.size, 10, "refusals leave the state alone");
  });

  test("refuses a checkpoint signed by another key (403) and an unknown origin (404)", () => {
    const { log, submit } = setup();
    log.add(3);
    const impostor = parseNoteSignerKey(generateNoteKey(ORIGIN).skey);
    const v = submit(0, [], log.checkpoint(3, log.root(), impostor));
    assert.equal(v.ok ? 200 : v.status, 403);
    // A signature line under the trusted key's name and ID whose signature fails: 403.
    const good = log.checkpoint();
    const lines = good.split("\n");
    const sigLine = lines[lines.length - 2]!;
    const raw = Buffer.from(sigLine.split(" ")[2]!, "base64");
    raw[10]! ^= 1;
    const tampered = good.replace(sigLine, `${sigLine.split(" ").slice(0, 2).join(" ")} ${raw.toString("base64")}`);
    const t = submit(0, [], tampered);
    assert.equal(t.ok ? 200 : t.status, 403);
    const elsewhere = memoryLog("other.example/log");
    elsewhere.add(1);
    const u = submit(0, [], elsewhere.checkpoint());
    assert.equal(u.ok ? 200 : u.status, 404);
  });

  test("malformed requests do not parse (400)", () => {
    const { log } = setup();
    log.add(2);
    const cp = log.checkpoint();
    const h = Buffer.alloc(32).toString("base64");
    const bad: (string | Uint8Array)[] = [
      "",
      `old 1`,
      `old 01\n\n${cp}`,
      `old -1\n\n${cp}`,
      `old 1 \n\n${cp}`,
      `new 1\n\n${cp}`,
      `old 1\nnot base64!\n\n${cp}`,
      `old 1\n${Buffer.alloc(31).toString("base64")}\n\n${cp}`,
      `old 1\n${`${h}\n`.repeat(64)}\n${cp}`,
      `old 1\n${h}\n`,
      `old 1\n\n`,
      new Uint8Array([...utf8("old 0\n\n"), 0xff, 0xfe]),
    ];
    for (const b of bad) assert.equal(parseAddCheckpointRequest(b).ok, false, JSON.stringify(String(b).slice(0, 40)));
    assert.ok(parseAddCheckpointRequest(`old 1\n${`${h}\n`.repeat(63)}\n${cp}`).ok);
    // A note that is not a checkpoint, or has no signature block: 400 from the decision.
    const { submit } = setup();
    for (const note of [
      "hello\n\n\u2014 x AAAAAAA=\n",
      `${ORIGIN}\n2\n`,
      `${ORIGIN}\n02\nAAAA\n\n\u2014 x AAAAAAA=\n`,
    ]) {
      const v = submit(0, [], note);
      assert.equal(v.ok ? 200 : v.status, 400, note);
    }
  });
});

describe("witness keys", () => {
  let dir: string;
  beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), "valise-wkey-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("init writes a 0600 key file that is never overwritten; the vkey is a tlog-cosignature key", () => {
    const file = join(dir, "witness.key");
    const key = createWitnessKeyFile(file, "witness.test/w1");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(key.vkey, /^witness\.test\/w1\+[0-9a-f]{8}\+/);
    assert.equal(Buffer.from(key.vkey.split("+").slice(2).join("+"), "base64")[0], 0x04);
    assert.equal(loadWitnessKeyFile(file).vkey, key.vkey);
    assert.throws(
      () => createWitnessKeyFile(file),
      (e) => isValiseError(e) && e.code === "conflict",
    );
    chmodSync(file, 0o644);
    assert.throws(
      () => loadWitnessKeyFile(file),
      (e) => isValiseError(e) && e.code === "forbidden",
    );
    assert.throws(
      () => parseWitnessKey("PRIVATE+KEY+w+00000000+AAAA"),
      (e) => isValiseError(e),
    );
    const { skey } = generateWitnessKey("w");
    assert.throws(() => parseWitnessKey(skey.replace(/^(PRIVATE\+KEY\+w\+)[0-9a-f]{8}/, "$100000000")), /key ID/);
  });

  test("--witness URL=VKEY parsing", () => {
    const { key } = generateWitnessKey("witness.test/w1");
    const w = parseWitnessSpec(`http://127.0.0.1:9000/=${key.vkey}`);
    assert.equal(w.url, "http://127.0.0.1:9000");
    assert.equal(w.vkey, key.vkey);
    assert.equal(parseWitnessSpec(`http://127.0.0.1:9/w?a=b=${key.vkey}`).url, "http://127.0.0.1:9/w?a=b");
    for (const bad of [
      key.vkey,
      `http://127.0.0.1:9000`,
      `ftp://x=${key.vkey}`,
      `http://x=${generateNoteKey("l").vkey}`,
    ])
      assert.throws(
        () => parseWitnessSpec(bad),
        (e) => isValiseError(e) && e.code === "bad_request",
      );
  });
});

test("--log-key VKEY or ORIGIN=VKEY; a log key trusted for another origin (the audit log)", async () => {
  const { skey, vkey } = generateNoteKey(ORIGIN);
  const plain = parseLogKeySpec(vkey);
  assert.ok(!("origin" in plain) && plain.name === ORIGIN);
  const audit = parseLogKeySpec(`test.valise.example/audit=${vkey}`);
  assert.ok("origin" in audit && audit.origin === "test.valise.example/audit" && audit.key.name === ORIGIN);
  assert.ok("origin" in parseLogKeySpec(`a=b=${vkey}`));
  for (const bad of ["", "x", `=${vkey}`, generateWitnessKey("w").key.vkey, `${vkey}x`])
    assert.throws(
      () => parseLogKeySpec(bad),
      (e) => isValiseError(e) && e.code === "bad_request",
      bad,
    );

  const dir = mkdtempSync(join(tmpdir(), "valise-witness-"));
  const state = new WitnessStateDir(dir);
  try {
    const wkey = generateWitnessKey("witness.test/w1").key;
    const logV = verifierOf(skey);
    const onlyDirectory = await buildWitnessApp({ key: wkey, logKeys: [logV], state });
    const auditLog = memoryLog("test.valise.example/audit", skey);
    auditLog.add(3);
    const payload = formatAddCheckpointRequest(0, [], auditLog.checkpoint());
    const r1 = await onlyDirectory.inject({ method: "POST", url: "/add-checkpoint", payload });
    assert.equal(r1.statusCode, 404, "a key is trusted only for its own name unless configured otherwise");
    await onlyDirectory.close();
    const both = await buildWitnessApp({ key: wkey, logKeys: [logV, audit], state });
    const r2 = await both.inject({ method: "POST", url: "/add-checkpoint", payload });
    assert.equal(r2.statusCode, 200, r2.body);
    await both.close();
  } finally {
    state.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("witness over HTTP", () => {
  let dir: string;
  let app: FastifyInstance;
  let state: WitnessStateDir;
  const wkey = generateWitnessKey("witness.test/w1").key;
  const { skey } = generateNoteKey(ORIGIN);
  const logV = verifierOf(skey);
  const clock = frozenClock(1_750_000_000_000);

  async function open() {
    state = new WitnessStateDir(dir);
    app = await buildWitnessApp({ key: wkey, logKeys: [logV], state, clock });
  }
  async function close() {
    await app.close();
    state.close();
  }
  const post = (old: number, proof: Uint8Array[], note: string) =>
    app.inject({ method: "POST", url: "/add-checkpoint", payload: formatAddCheckpointRequest(old, proof, note) });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "valise-witness-"));
    await open();
  });
  afterEach(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("200 with a cosignature line; 409 with the size as text/x.tlog.size; monitors read the cosigned note", async () => {
    const log = memoryLog(ORIGIN, skey);
    log.add(7);
    const r = await post(0, [], log.checkpoint());
    assert.equal(r.statusCode, 200, r.body);
    assert.match(r.body, /^\u2014 witness\.test\/w1 \S+\n$/);
    const q = verifyCheckpointQuorum(log.checkpoint() + r.body, logV, [wkey.verifier], 1);
    assert.ok(q.ok && q.cosigners[0]!.timestamp === 1_750_000_000);
    const c = await post(3, log.proof(3, 5), log.checkpoint(5));
    assert.equal(c.statusCode, 409);
    assert.equal(c.headers["content-type"], "text/x.tlog.size");
    assert.equal(c.body, "7\n");
    const m = await app.inject({ method: "GET", url: `/${originHash(ORIGIN)}/checkpoint` });
    assert.equal(m.statusCode, 200);
    assert.ok(verifyCheckpointQuorum(m.body, logV, [wkey.verifier], 1).ok);
    assert.equal((await app.inject({ method: "GET", url: `/${originHash("x")}/checkpoint` })).statusCode, 404);
    const files = readdirSync(dir).filter((f) => f.endsWith(".checkpoint"));
    assert.deepEqual(files, [`${originHash(ORIGIN)}.checkpoint`]);
    assert.equal(statSync(join(dir, files[0]!)).mode & 0o777, 0o600);
  });

  test("status codes for refusals: 403 another key, 422 fork, 400 malformed, 404 unknown origin", async () => {
    const log = memoryLog(ORIGIN, skey);
    log.add(4);
    assert.equal((await post(0, [], log.checkpoint())).statusCode, 200);
    const impostor = parseNoteSignerKey(generateNoteKey(ORIGIN).skey);
    assert.equal((await post(4, [], log.checkpoint(4, log.root(), impostor))).statusCode, 403);
    assert.equal(existsSync(join(dir, "evidence")), false, "an unsigned checkpoint is no evidence");
    const forked = log.checkpoint(4, new Uint8Array(32));
    assert.equal((await post(4, [], forked)).statusCode, 422);
    // The fork is kept as evidence: both checkpoints, each signed by the log, side by side.
    const evidence = readdirSync(join(dir, "evidence"));
    assert.equal(evidence.length, 1);
    const text = readFileSync(join(dir, "evidence", evidence[0]!), "utf8");
    assert.ok(text.includes(forked) && text.includes(log.checkpoint()) && /fork/.test(text));
    const other = memoryLog("other.example/log");
    other.add(1);
    assert.equal((await post(0, [], other.checkpoint())).statusCode, 404);
    for (const payload of ["garbage", "old 4\n", "old 4\n\nnot a note\n"]) {
      const r = await app.inject({ method: "POST", url: "/add-checkpoint", payload });
      assert.equal(r.statusCode, 400, payload);
    }
    const noType = await app.inject({
      method: "POST",
      url: "/add-checkpoint",
      payload: Buffer.from(formatAddCheckpointRequest(4, [], log.checkpoint())),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(noType.statusCode, 200);
    assert.equal((await app.inject({ method: "GET", url: "/add-checkpoint" })).statusCode, 404);
  });

  test("concurrent requests from the same old size: exactly one is cosigned (check and persist are atomic)", async () => {
    const log = memoryLog(ORIGIN, skey);
    log.add(2);
    assert.equal((await post(0, [], log.checkpoint())).statusCode, 200);
    log.add(3);
    const a = log.checkpoint(4);
    const b = log.checkpoint(5);
    const [ra, rb] = await Promise.all([post(2, log.proof(2, 4), a), post(2, log.proof(2, 5), b)]);
    assert.deepEqual([ra.statusCode, rb.statusCode].sort(), [200, 409]);
  });

  test("state survives a restart: the restarted witness refuses the rollback and the fork, and accepts growth", async () => {
    const log = memoryLog(ORIGIN, skey);
    log.add(9);
    assert.equal((await post(0, [], log.checkpoint())).statusCode, 200);
    await close();
    assert.throws(() => {
      const s = new WitnessStateDir(dir);
      s.close();
      new WitnessStateDir(dir).close();
      const held = new WitnessStateDir(dir);
      try {
        new WitnessStateDir(dir);
      } finally {
        held.close();
      }
    }, /in use by process/);
    await open();
    const c = await post(0, [], log.checkpoint(5));
    assert.equal(c.statusCode, 409);
    assert.equal(c.body, "9\n");
    assert.equal((await post(9, [], log.checkpoint(9, new Uint8Array(32).fill(9)))).statusCode, 422);
    log.add(2);
    assert.equal((await post(9, log.proof(9), log.checkpoint())).statusCode, 200);
  });
});
