/**
 * C2SP tlog-cosignature (Ed25519 cosignature/v1, type 0x04): the spec example (c2sp-examples.json) byte-exact,
 * sign/verify, and the checkpoint quorum check.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  cosignatureKeyId,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureVerifier,
  ed25519NoteVerifier,
  formatCheckpoint,
  formatCosignatureVerifierKey,
  frozenClock,
  fromBase64,
  generateNoteKey,
  openNote,
  parseCosignatureVerifierKey,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  parseTimestampedSignature,
  signNote,
  toHex,
  utf8,
  verifyCheckpointQuorum,
} from "../src/index.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { readVectorText } from "./vectors.js";

const examples = JSON.parse(readVectorText("tlog", "vectors", "c2sp-examples.json")) as {
  parseOnly: {
    msg: string;
    expect: {
      cosignature?: { name: string; keyId: string; timestamp: number; signatureLength: number };
      cosignedMessage?: string;
    };
  }[];
};
const cosigned = examples.parseOnly.find((p) => p.expect.cosignature !== undefined)!;

void test("c2sp-examples.json: the tlog-cosignature.md example, byte-exact", () => {
  const want = cosigned.expect.cosignature!;
  const line = cosigned.msg.split("\n").find((l) => l.startsWith(`\u2014 ${want.name} `))!;
  const raw = fromBase64(line.split(" ")[2]!);
  assert.equal(toHex(raw.subarray(0, 4)), want.keyId);
  const ts = parseTimestampedSignature(raw.subarray(4));
  assert.ok(ts);
  assert.equal(ts.timestamp, want.timestamp);
  assert.equal(ts.signature.length, want.signatureLength);
  const text = cosigned.msg.slice(0, cosigned.msg.lastIndexOf("\n\n") + 1);
  assert.equal(new TextDecoder().decode(cosignatureMessage(text, ts.timestamp)), cosigned.expect.cosignedMessage);
  // The spec's signed-message example, line for line.
  assert.equal(
    new TextDecoder().decode(cosignatureMessage(text, 1679315147)),
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
  );
});

// A log and three witnesses with fixed keys.
const seed = (b: number) => new Uint8Array(32).fill(b);
const logKey = generateNoteKey("valise.example/log", seed(1));
const logSigner = parseNoteSignerKey(logKey.skey);
const logVerifier = parseNoteVerifierKey(logKey.vkey);
const witnessNames = ["w1.example/a", "w2.example/b", "w3.example/c"];
const clock = frozenClock(1_700_000_000_000);
const wSigners = witnessNames.map((n, i) => cosignatureSigner(n, seed(10 + i), clock));
const wVerifiers = witnessNames.map((n, i) => cosignatureVerifier(n, ed25519.getPublicKey(seed(10 + i))));
const text = formatCheckpoint({
  origin: "valise.example/log",
  size: 42,
  rootHash: new Uint8Array(32).fill(7),
  extensions: [],
});

void test("cosigner keys: key ID uses type 0x04, vkeys round-trip, type 0x01 vkeys are not cosigner keys", () => {
  const pub = ed25519.getPublicKey(seed(10));
  const vkey = formatCosignatureVerifierKey("w1.example/a", pub);
  const v = parseCosignatureVerifierKey(vkey);
  assert.equal(v.keyId, cosignatureKeyId("w1.example/a", pub));
  assert.equal(v.keyId, wVerifiers[0]!.keyId);
  assert.notEqual(v.keyId, ed25519NoteVerifier("w1.example/a", pub).keyId);
  assert.throws(() => parseCosignatureVerifierKey(logKey.vkey));
  assert.throws(() => parseNoteVerifierKey(vkey));
});

void test("sign and verify a cosignature; the signature covers the timestamp and the text", () => {
  const note = signNote(text, [logSigner, wSigners[0]!]);
  const opened = openNote(note, [logVerifier, wVerifiers[0]!]);
  assert.ok(opened.ok);
  const raw = fromBase64(opened.sigs[1]!.base64);
  const ts = parseTimestampedSignature(raw.subarray(4))!;
  assert.equal(ts.timestamp, 1_700_000_000);
  // The signature is plain Ed25519 over the spec's message.
  assert.ok(ed25519.verify(ts.signature, cosignatureMessage(text, ts.timestamp), ed25519.getPublicKey(seed(10))));
  // Another timestamp with the same signature fails.
  const moved = raw.slice();
  moved[11] = moved[11]! ^ 1;
  assert.equal(wVerifiers[0]!.verify(utf8(text), moved.subarray(4)), false);
  // Timestamps above 2^63 - 1 are refused.
  const big = raw.slice(4);
  big[0] = 0x80;
  assert.equal(parseTimestampedSignature(big), undefined);
  assert.equal(parseTimestampedSignature(raw.subarray(4, 70)), undefined);
});

void test("verifyCheckpointQuorum", () => {
  const all = signNote(text, [logSigner, ...wSigners]);
  const ok = verifyCheckpointQuorum(all, logVerifier, wVerifiers, 3);
  assert.ok(ok.ok);
  assert.equal(ok.checkpoint.size, 42);
  assert.deepEqual(
    ok.cosigners.map((c) => [c.name, c.timestamp]),
    witnessNames.map((n) => [n, 1_700_000_000]),
  );
  const two = signNote(text, [logSigner, wSigners[0]!, wSigners[2]!]);
  assert.equal(verifyCheckpointQuorum(two, logVerifier, wVerifiers, 2).ok, true);
  assert.equal(verifyCheckpointQuorum(two, logVerifier, wVerifiers, 3).ok, false);
  // Witness signatures alone, without the log's: rejected.
  assert.equal(verifyCheckpointQuorum(signNote(text, wSigners), logVerifier, wVerifiers, 1).ok, false);
  // Unknown cosigners don't count, and don't break the note.
  const stranger = cosignatureSigner("w9.example/z", seed(99), clock);
  const withStranger = signNote(text, [logSigner, wSigners[0]!, stranger]);
  assert.equal(verifyCheckpointQuorum(withStranger, logVerifier, wVerifiers, 1).ok, true);
  assert.equal(verifyCheckpointQuorum(withStranger, logVerifier, wVerifiers, 2).ok, false);
  // The same witness twice counts once (Go drops the repeated line).
  const line = two.split("\n").find((l) => l.includes("w1.example/a"))!;
  assert.equal(verifyCheckpointQuorum(two + line + "\n", logVerifier, wVerifiers, 3).ok, false);
  // A bad cosignature by a known witness rejects the whole note.
  const at = all.indexOf("w2.example/b ") + "w2.example/b ".length + 30;
  const forged = all.slice(0, at) + (all[at] === "A" ? "B" : "A") + all.slice(at + 1);
  assert.equal(verifyCheckpointQuorum(forged, logVerifier, wVerifiers, 1).ok, false);
  // Wrong origin; explicit origin override.
  const other = formatCheckpoint({
    origin: "other.example/log",
    size: 1,
    rootHash: new Uint8Array(32),
    extensions: [],
  });
  const otherNote = signNote(other, [logSigner, wSigners[0]!]);
  assert.equal(verifyCheckpointQuorum(otherNote, logVerifier, wVerifiers, 1).ok, false);
  assert.equal(verifyCheckpointQuorum(otherNote, logVerifier, wVerifiers, 1, { origin: "other.example/log" }).ok, true);
  // Not a checkpoint.
  assert.equal(verifyCheckpointQuorum(signNote("hello\n", [logSigner]), logVerifier, [], 0).ok, false);
  // Cosignatures from the future, when a clock is given.
  const early = frozenClock(1_600_000_000_000);
  assert.equal(verifyCheckpointQuorum(all, logVerifier, wVerifiers, 3, { clock: early }).ok, false);
  assert.equal(verifyCheckpointQuorum(all, logVerifier, wVerifiers, 3, { clock }).ok, true);
  // Unreachable or nonsense quorum.
  for (const q of [4, -1, 1.5, NaN]) assert.equal(verifyCheckpointQuorum(all, logVerifier, wVerifiers, q).ok, false);
});

void test("property: verifyCheckpointQuorum never throws, and flipping any byte never yields a different checkpoint", () => {
  const all = signNote(text, [logSigner, ...wSigners]);
  const bytes = utf8(all);
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const t = bytes.slice();
      const i = pos % t.length;
      t[i] = t[i]! ^ x;
      const r = verifyCheckpointQuorum(t, logVerifier, wVerifiers, 1);
      if (r.ok) assert.equal(formatCheckpoint(r.checkpoint), text);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      assert.equal(verifyCheckpointQuorum(s, logVerifier, wVerifiers, 1).ok, false);
    }),
  );
});
