/** C2SP tlog-checkpoint: the spec example (c2sp-examples.json), strict parsing, and a format/parse property. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatCheckpoint, fromBase64, openNote, parseCheckpoint, type NoteVerifier } from "../src/index.js";
import { readVectorText } from "./vectors.js";

const examples = JSON.parse(readVectorText("tlog", "vectors", "c2sp-examples.json")) as {
  parseOnly: {
    specFile: string;
    msg: string;
    expect: { origin?: string; treeSize?: number; rootHash?: string; extensionLines?: string[] };
  }[];
};
const checkpoints = examples.parseOnly.filter((p) => p.expect.origin !== undefined);

// The spec publishes no log key: accept any signature from the named key so the note text can be taken out.
function textOf(msg: string): string {
  const sig = /\n\u2014 (\S+) (\S+)\n/.exec(msg)!;
  const raw = fromBase64(sig[2]!);
  const keyId = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
  const any: NoteVerifier = { name: sig[1]!, keyId, verify: () => true };
  const opened = openNote(msg, [any]);
  assert.ok(opened.ok);
  return opened.text;
}

void test("c2sp-examples.json: the tlog-checkpoint.md and tlog-cosignature.md checkpoints parse byte-exactly (2)", () => {
  assert.equal(checkpoints.length, 2);
  for (const p of checkpoints) {
    const text = textOf(p.msg);
    const c = parseCheckpoint(text);
    assert.equal(c.origin, p.expect.origin);
    assert.equal(c.size, p.expect.treeSize);
    assert.deepEqual(c.rootHash, fromBase64(p.expect.rootHash!));
    assert.deepEqual(c.extensions, p.expect.extensionLines ?? []);
    assert.equal(formatCheckpoint(c), text);
  }
});

const ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

void test("strict parse: rejects every deviation the spec rules out", () => {
  const bad: [string, string][] = [
    ["no final newline", `o\n1\n${ROOT}`],
    ["two lines", `o\n1\n`],
    ["empty origin", `\n1\n${ROOT}\n`],
    ["leading zero", `o\n01\n${ROOT}\n`],
    ["00", `o\n00\n${ROOT}\n`],
    ["plus sign", `o\n+1\n${ROOT}\n`],
    ["negative", `o\n-1\n${ROOT}\n`],
    ["hex", `o\n0x10\n${ROOT}\n`],
    ["exponent", `o\n1e3\n${ROOT}\n`],
    ["space in size", `o\n 1\n${ROOT}\n`],
    ["empty size", `o\n\n${ROOT}\n`],
    ["size above 2^53 - 1", `o\n9007199254740992\n${ROOT}\n`],
    ["20 digits", `o\n18446744073709551615\n${ROOT}\n`],
    ["unicode digits", `o\n\u0661\n${ROOT}\n`],
    ["root not base64", `o\n1\n!!!!\n`],
    ["root base64url", `o\n1\n${ROOT.replace("/", "_")}\n`],
    ["root without padding", `o\n1\n${ROOT.slice(0, -1)}\n`],
    ["root 31 bytes", `o\n1\n${"A".repeat(40)}AA==\n`],
    ["root 33 bytes", `o\n1\n${"A".repeat(44)}\n`],
    ["empty extension line", `o\n1\n${ROOT}\n\n`],
    ["empty extension between", `o\n1\n${ROOT}\next\n\nmore\n`],
    ["control character", `o\x01\n1\n${ROOT}\n`],
    ["CRLF", `o\r\n1\r\n${ROOT}\r\n`],
  ];
  for (const [desc, text] of bad) assert.throws(() => parseCheckpoint(text), desc);
  assert.equal(parseCheckpoint(`o\n0\n${ROOT}\n`).size, 0);
  assert.equal(parseCheckpoint(`o\n9007199254740991\n${ROOT}\n`).size, Number.MAX_SAFE_INTEGER);
  assert.deepEqual(parseCheckpoint(`o p+q\n5\n${ROOT}\next one\nx\n`).extensions, ["ext one", "x"]);
});

void test("property: format then parse round-trips; parse then format is the identity on valid text", () => {
  const lineArb = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\x00-\x1f]/.test(s));
  fc.assert(
    fc.property(
      lineArb,
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(lineArb, { maxLength: 3 }),
      (origin, size, rootHash, extensions) => {
        const text = formatCheckpoint({ origin, size, rootHash, extensions });
        const c = parseCheckpoint(text);
        assert.deepEqual({ ...c, extensions: [...c.extensions] }, { origin, size, rootHash, extensions });
        assert.equal(formatCheckpoint(c), text);
      },
    ),
  );
});
