/**
 * The message send path's helpers (issue 17, delivery): the native strict base64 decoder of WebSocket send frames
 * accepts exactly what core `fromBase64` accepts; frames written in one pass are held and flushed together, in order;
 * audit event ids drawn from a pooled CSPRNG buffer stay well-formed and distinct across refills.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { fromBase64, toBase64 } from "@valise/core";
import { fromBase64Strict } from "../src/http/base64.js";
import { FrameBatch, type Corkable } from "../src/http/frame-batch.js";
import { newAuditId } from "../src/storage/audit-log.js";

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
