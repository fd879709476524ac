/**
 * C2SP signed-note: golang.org/x/mod/sumdb/note vectors (go-sumdb-note.json), the spec's examples
 * (c2sp-examples.json), the malformed notes the spec lists, and property tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  fromBase64,
  generateNoteKey,
  noteKeyId,
  openNote,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  parseVerifierKeyParts,
  signNote,
  utf8,
  type NoteSignature,
  type NoteVerifier,
} from "../src/index.js";
import { readVectorText } from "./vectors.js";

interface Sig {
  name: string;
  keyId: string;
  sig: string;
}
interface GoVectors {
  keys: Record<string, { vkey: string; skey: string }>;
  verifierKeyCases: { desc: string; vkey: string; ok: boolean; name?: string; keyId?: string }[];
  signCases: { desc: string; skey: string; text: string; existingNote: string | null; want?: string; error?: string }[];
  openCases: {
    desc: string;
    msg?: string;
    msgBase64?: string;
    verifiers: string[];
    expect: { ok: boolean; text?: string; sigs?: Sig[]; unverifiedSigs?: Sig[]; error?: string };
  }[];
}
const go = JSON.parse(readVectorText("tlog", "vectors", "go-sumdb-note.json")) as GoVectors;
const examples = JSON.parse(readVectorText("tlog", "vectors", "c2sp-examples.json")) as {
  verifiable: { vkey: string; msg: string; expect: { ok: boolean; text: string } }[];
  parseOnly: { desc: string; msg: string; expect: { text?: string; signatures?: { name: string; keyId: string }[] } }[];
};

const verifierFor = (name: string): NoteVerifier => parseNoteVerifierKey(go.keys[name]!.vkey);
const asVectorSig = (s: NoteSignature): Sig => ({
  name: s.name,
  keyId: s.keyId.toString(16).padStart(8, "0"),
  sig: s.base64,
});

void test("go-sumdb-note.json: keys parse, vkeys and skeys agree", () => {
  for (const [name, k] of Object.entries(go.keys)) {
    const v = parseNoteVerifierKey(k.vkey);
    const s = parseNoteSignerKey(k.skey);
    assert.equal(v.name, name);
    assert.equal(s.name, name);
    assert.equal(s.keyId, v.keyId);
    const seed = fromBase64(k.skey.split("+").slice(4).join("+")).subarray(1);
    assert.deepEqual(generateNoteKey(name, seed), { skey: k.skey, vkey: k.vkey });
  }
});

void test("go-sumdb-note.json: verifierKeyCases (3)", () => {
  assert.equal(go.verifierKeyCases.length, 3);
  for (const c of go.verifierKeyCases) {
    if (c.ok) {
      const v = parseNoteVerifierKey(c.vkey);
      assert.equal(v.name, c.name);
      assert.equal(v.keyId.toString(16).padStart(8, "0"), c.keyId);
    } else {
      assert.throws(() => parseNoteVerifierKey(c.vkey), c.desc);
    }
  }
});

void test("go-sumdb-note.json: verifierKeyMangling — every proper substring and every +1 byte is rejected", () => {
  const mangle = (s: string): string[] => {
    const out: string[] = [];
    for (let i = 0; i <= s.length; i++)
      for (let j = i; j <= s.length; j++) if (j - i < s.length) out.push(s.slice(i, j));
    for (let i = 0; i < s.length; i++)
      out.push(s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) + 1) + s.slice(i + 1));
    return out;
  };
  const { vkey, skey } = go.keys.PeterNeumann!;
  let n = 0;
  for (const m of mangle(vkey)) {
    assert.throws(() => parseNoteVerifierKey(m), m);
    n++;
  }
  for (const m of mangle(skey)) {
    assert.throws(() => parseNoteSignerKey(m), m);
    n++;
  }
  assert.ok(n > 5000);
});

void test("go-sumdb-note.json: signCases (3), byte-exact", () => {
  assert.equal(go.signCases.length, 3);
  for (const c of go.signCases) {
    const signer = parseNoteSignerKey(go.keys[c.skey]!.skey);
    let existing: NoteSignature[] = [];
    if (c.existingNote !== null) {
      const opened = openNote(c.existingNote, [verifierFor("PeterNeumann")]);
      assert.ok(opened.ok);
      existing = [...opened.sigs, ...opened.unverifiedSigs];
    }
    if (c.error !== undefined) assert.throws(() => signNote(c.text, [signer], existing), c.desc);
    else assert.equal(signNote(c.text, [signer], existing), c.want, c.desc);
  }
});

void test("go-sumdb-note.json: openCases (16)", () => {
  assert.equal(go.openCases.length, 16);
  for (const c of go.openCases) {
    const msg = c.msgBase64 !== undefined ? fromBase64(c.msgBase64) : c.msg!;
    const got = openNote(msg, c.verifiers.map(verifierFor));
    if (!c.expect.ok) {
      assert.equal(got.ok, false, c.desc);
      continue;
    }
    assert.ok(got.ok, `${c.desc}: ${got.ok ? "" : got.reason}`);
    assert.equal(got.text, c.expect.text, c.desc);
    assert.deepEqual(got.sigs.map(asVectorSig), c.expect.sigs, c.desc);
    assert.deepEqual(got.unverifiedSigs.map(asVectorSig), c.expect.unverifiedSigs, c.desc);
    // Bytes and string input agree.
    assert.deepEqual(openNote(utf8(c.msg!), c.verifiers.map(verifierFor)), got);
  }
});

void test("c2sp-examples.json: the signed-note.md example verifies; parse-only examples split as the spec says", () => {
  for (const v of examples.verifiable) {
    const got = openNote(v.msg, [parseNoteVerifierKey(v.vkey)]);
    assert.ok(got.ok);
    assert.equal(got.text, v.expect.text);
    assert.equal(
      openNote(v.msg.replace("example message", "exampel message"), [parseNoteVerifierKey(v.vkey)]).ok,
      false,
    );
  }
  for (const p of examples.parseOnly.filter((p) => p.expect.text !== undefined)) {
    // No public key is published: the note opens as "no verifiable signatures", and with a verifier that matches the
    // name and key ID (but not the key) it fails on the signature. Either way the split is exercised.
    const got = openNote(p.msg, []);
    assert.deepEqual(got, { ok: false, reason: "note has no verifiable signatures" });
    const sig = p.expect.signatures![0]!;
    const impostor: NoteVerifier = {
      name: sig.name,
      keyId: parseInt(sig.keyId, 16),
      verify: (text) => new TextDecoder().decode(text) === p.expect.text,
    };
    const opened = openNote(p.msg, [impostor]);
    assert.ok(opened.ok, p.desc);
    assert.equal(opened.text, p.expect.text);
  }
});

// ---- the malformed notes the spec lists, with a real signature from a known key ----

const peter = parseNoteSignerKey(go.keys.PeterNeumann!.skey);
const peterV = verifierFor("PeterNeumann");
const good = signNote("hello\nworld\n", [peter]);
const sigLine = good.slice(good.indexOf("\u2014"));

void test("malformed notes are rejected, never thrown", () => {
  const cases: [string, string | Uint8Array][] = [
    ["no final newline", good.slice(0, -1)],
    ["no blank line", good.replace("\n\n", "\n")],
    ["only text", "hello\nworld\n"],
    ["empty", ""],
    ["blank line but no signatures", "hello\n\n"],
    ["extra line after signatures", good + "trailing\n"],
    ["blank line after signatures", good + "\n"],
    ["invalid UTF-8", new Uint8Array([...utf8(good.slice(0, 3)), 0xc3, 0x28, ...utf8(good.slice(3))])],
    ["overlong UTF-8", new Uint8Array([0xc0, 0xaf, ...utf8(good)])],
    ["lone surrogate in a string", "\ud800" + good],
    ["NUL", "a\u0000" + good],
    ["carriage return", good.replace("hello\n", "hello\r\n")],
    ["tab", good.replace("hello", "hel\tlo")],
    ["escape", good.replace("hello", "\u001b[1m")],
    ["signature line without em dash", good.replace("\u2014 ", "- ")],
    ["en dash", good.replace("\u2014", "\u2013")],
    ["no space after dash", good.replace("\u2014 ", "\u2014")],
    ["two spaces after the name", good.replace("PeterNeumann ", "PeterNeumann  ")],
    ["name with '+'", good.replace("PeterNeumann", "Peter+Neumann")],
    ["name with NBSP", good.replace("PeterNeumann", "Peter\u00a0Neumann")],
    ["name with ideographic space", good.replace("PeterNeumann", "Peter\u3000Neumann")],
    ["empty name", good.replace("\u2014 PeterNeumann ", "\u2014  ")],
    ["bad base64", good.replace(/ [A-Za-z0-9+/=]+\n$/, " !!!!\n")],
    ["base64 without padding", good.replace(/=\n$/, "\n")],
    ["signature shorter than 5 bytes", good.replace(/ [A-Za-z0-9+/=]+\n$/, " AAAAAA==\n")],
    ["trailing space", good.replace(/\n$/, " \n")],
    ["101 signature lines", good + sigLine.repeat(100)],
  ];
  for (const [desc, msg] of cases) {
    const got = openNote(msg, [peterV]);
    assert.equal(got.ok, false, desc);
  }
  assert.equal(openNote(good, [peterV]).ok, true);
  // The spec's minimum: 16 signatures (here 100, Go's limit) must be accepted.
  assert.equal(openNote(good + sigLine.repeat(99), [peterV]).ok, true);
});

void test("unknown signers: ignored even when sharing the name or the key ID (but not both)", () => {
  const enoch = parseNoteSignerKey(go.keys.EnochRoot!.skey);
  const both = signNote("text\n", [peter, enoch]);
  // Same name as Peter, other key ID: ignored, so Peter's valid signature carries the note.
  const sameName: NoteSigner = { name: "PeterNeumann", keyId: 0x01020304, sign: (t) => enoch.sign(t) };
  const sameId: NoteSigner = { name: "Someone", keyId: peter.keyId, sign: () => new Uint8Array(64) };
  const n = signNote("text\n", [peter, sameName, sameId]);
  const got = openNote(n, [peterV]);
  assert.ok(got.ok);
  assert.equal(got.sigs.length, 1);
  assert.equal(got.unverifiedSigs.length, 2);
  // A known key whose signature fails rejects the whole note, even next to a good one.
  // Change one base64 character well inside the signature (past the 4-byte key ID).
  const at = both.indexOf("EnochRoot ") + "EnochRoot ".length + 20;
  const forged = both.slice(0, at) + (both[at] === "A" ? "B" : "A") + both.slice(at + 1);
  assert.equal(openNote(forged, [peterV, verifierFor("EnochRoot")]).ok, false);
  // A second line by the same known key is dropped before verification (as Go).
  const dup = `\u2014 PeterNeumann x08go/ZJ${"A".repeat(84)}\n`;
  assert.equal(openNote(n + dup, [peterV]).ok, true);
  assert.equal(openNote(n.replace("\n\n", "\n\n" + dup), [peterV]).ok, false);
});

interface NoteSigner {
  name: string;
  keyId: number;
  sign(t: Uint8Array): Uint8Array;
}

void test("key IDs: SHA-256(name || 0x0A || 0x01 || pubkey)[:4]", () => {
  const p = parseVerifierKeyParts(go.keys.PeterNeumann!.vkey);
  assert.equal(noteKeyId(p.name, p.alg, p.publicKey), p.keyId);
  assert.equal(p.keyId, 0xc74f20a3);
});

void test("property: sign then open round-trips any valid text; any flipped byte fails", () => {
  const textArb = fc
    .string({ unit: "grapheme", maxLength: 60 })
    .map((s) => s.replace(/[\x00-\x09\x0b-\x1f]/g, "") + "\n");
  fc.assert(
    fc.property(textArb, fc.nat(), (text, pos) => {
      const note = signNote(text, [peter]);
      const got = openNote(note, [peterV]);
      assert.ok(got.ok);
      assert.equal(got.text, text);
      const bytes = utf8(note);
      const i = pos % bytes.length;
      const tampered = bytes.slice();
      tampered[i] = tampered[i]! ^ 0x01;
      assert.equal(openNote(tampered, [peterV]).ok, false, `flip byte ${i}`);
    }),
    { numRuns: 150 },
  );
});

void test("property: openNote never throws on arbitrary input", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 300 })), (msg) => {
      const got = openNote(msg, [peterV]);
      assert.equal(typeof got.ok, "boolean");
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      const got = openNote(
        good.replace("hello", () => s),
        [peterV],
      ); // a function: "$&" in s is literal
      assert.equal(got.ok, s === "hello");
    }),
  );
});
