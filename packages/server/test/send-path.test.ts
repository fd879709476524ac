/**
 * The message send path's helpers (issue 17, delivery): the native strict base64 decoder of WebSocket send frames
 * accepts exactly what core `fromBase64` accepts; frames written in one pass are held and flushed together, in order;
 * audit event ids drawn from a pooled CSPRNG buffer stay well-formed and distinct across refills; the tree hashes
 * through node:crypto are RFC 9162's, and a SHA-256 that is not one is refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { emptyRoot, fromBase64, leafHash, nodeHash, setMerkleSha256, toBase64 } from "@valise/core";
import { fromBase64Strict } from "../src/http/base64.js";
import { FrameBatch, type Corkable } from "../src/http/frame-batch.js";
import { newAuditId } from "../src/storage/audit-log.js";
import { sha256Hex } from "../src/storage/secrets.js";
import "../src/storage/merkle-log.js"; // installs node:crypto's SHA-256 for the tree hashes

function reference(s: string): Uint8Array | null {
  try {
    return fromBase64(s);
  } catch {
    return null;
  }
}

test("strict base64: the same strings as core fromBase64, the same bytes", () => {
  const cases = [
    "",
    "QQ==",
    "QR==", // bits set in the padding position: not canonical
    "QUI=",
    "QUJ=", // idem
    "QUJD",
    "QQ", // no padding
    "QQ=",
    "Q===",
    "====",
    "QUJD\n",
    " QUJD",
    "QU JD",
    "QUJD====",
    "QQ==QUJD", // padding in the middle
    "-_-_", // base64url alphabet
    "+/+/",
    "QUJ\u00e9",
    "QUJD\u0000",
  ];
  for (let n = 0; n < 64; n++) cases.push(toBase64(randomBytes(n)));
  for (let n = 1; n < 40; n++) {
    // Random strings over the alphabet, '=', '-', '_' and a space: mostly invalid, some valid.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ ";
    cases.push(Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join(""));
  }
  for (const s of cases) {
    const want = reference(s);
    const got = fromBase64Strict(s);
    assert.equal(got === null, want === null, `accepts ${JSON.stringify(s)}: ${want !== null}`);
    if (want && got) assert.deepEqual(new Uint8Array(got), want, JSON.stringify(s));
  }
});

class FakeSocket implements Corkable {
  corks = 0;
  uncorks = 0;
  constructor(private readonly log: string[]) {}
  cork() {
    this.corks++;
    this.log.push("cork");
  }
  uncork() {
    this.uncorks++;
    this.log.push("uncork");
  }
}

test("frame batch: a socket is corked once per pass and uncorked after the queued continuations ran", async () => {
  const log: string[] = [];
  const a = new FakeSocket(log);
  const b = new FakeSocket(log);
  const batch = new FrameBatch();
  // Three acks resolved in one batch, each in its own promise continuation (as handleSend's are).
  const done = Promise.all(
    [a, b, a].map(async (s, i) => {
      await Promise.resolve();
      await Promise.resolve();
      batch.hold(s);
      log.push(`frame ${i}`);
    }),
  );
  await done;
  assert.deepEqual(log, ["cork", "frame 0", "cork", "frame 1", "frame 2"], "not uncorked between continuations");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([a.corks, a.uncorks, b.corks, b.uncorks], [1, 1, 1, 1], "flushed: every cork undone");
  // The next pass corks again.
  batch.hold(a);
  batch.hold(undefined); // a socket without a TCP socket (none known): nothing to hold
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([a.corks, a.uncorks], [2, 2]);
});

test("audit event ids from the pooled random bytes: well-formed and distinct across pool refills", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const id = newAuditId();
    assert.match(id, /^e-[0-9a-f]{20}$/);
    ids.add(id);
  }
  assert.equal(ids.size, 5000);
});

test("tree hashes through node:crypto are RFC 9162's; a wrong SHA-256 is refused and changes nothing", () => {
  const sha = (...parts: Uint8Array[]) => {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
  for (const n of [0, 1, 31, 32, 64, 330, 1000]) {
    const d = new Uint8Array(randomBytes(n));
    assert.deepEqual(leafHash(d), sha(Uint8Array.of(0), d));
  }
  const a = new Uint8Array(randomBytes(32));
  const b = new Uint8Array(randomBytes(32));
  assert.deepEqual(nodeHash(a, b), sha(Uint8Array.of(1), a, b));
  assert.deepEqual(nodeHash(a, b.subarray(0, 5)), sha(Uint8Array.of(1), a, b.subarray(0, 5)));
  assert.deepEqual(emptyRoot(), sha());
  assert.throws(() => setMerkleSha256(() => new Uint8Array(32)), RangeError);
  assert.throws(() => setMerkleSha256((...p) => sha(...p.slice(1))), RangeError, "drops the domain prefix");
  assert.deepEqual(leafHash(a), sha(Uint8Array.of(0), a), "still SHA-256 after the refusals");
});

test("token hashes (sha256Hex, one-shot): SHA-256 of the UTF-8 bytes in hex", () => {
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (const s of ["", "é-token-✓", "x".repeat(300)])
    assert.equal(sha256Hex(s), createHash("sha256").update(Buffer.from(s, "utf8")).digest("hex"));
});
