/**
 * Issue 13 finding 2: every decrypted application payload goes through one schema parser (`parsePayload`). Property
 * tests feed it random and hostile payloads — `__proto__`/`constructor`/`prototype` as fields and as ids, huge and
 * fractional numbers, deep nesting, wrong types, oversize strings, random bytes — and check that it never throws
 * anything but a `protocol_error` ValiseError, that hostile input is refused, that valid payloads come back equal,
 * and that nothing reaches Object.prototype.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ValiseError, toBase64 } from "@valise/core";
import { parsePayload } from "@valise/client";

const enc = (s: string) => new TextEncoder().encode(s);
const protoNames = () => Object.getOwnPropertyNames(Object.prototype).sort().join();
const PROTO_BEFORE = protoNames();

function notPolluted(): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype.polluted");
  assert.equal(protoNames(), PROTO_BEFORE, "Object.prototype gained properties");
  for (const k of ["0", "1", "2", "7"]) assert.equal(Object.hasOwn(Object.prototype, k), false);
}

/** Parses; returns "refused" on a protocol_error, rethrows anything else (a bug: the parser must not throw it). */
function outcome(bytes: Uint8Array): "accepted" | "refused" {
  try {
    parsePayload(bytes);
    return "accepted";
  } catch (e) {
    if (e instanceof ValiseError && e.code === "protocol_error") return "refused";
    throw e;
  }
}

const b32 = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz234567"), minLength: 26, maxLength: 26 });
const key = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toBase64);
const unitA = fc.constantFrom("EMB/BEIJING", "HQ/ASIA-1", "EMB/TOKYO", "HQ/SECURITY");
const label = fc.constantFrom("UNCLASSIFIED", "CONFIDENTIAL", "SECRET/ASIA", "SECRET/ASIA,NATO");
const handle = fc.constantFrom("jnovak", "pdvorak", "m.cerny");
const device = b32.map((s) => `d-${s}`);

const textPayload = fc.record({ t: fc.constant("text"), text: fc.string({ maxLength: 300 }) });
const cablePayload = fc
  .record({
    id: b32.map((s) => `k-${s}`),
    serial: fc.integer({ min: 1, max: 999_999 }),
    originator: unitA,
    precedence: fc.constantFrom("ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"),
    label,
    subject: fc.string({ minLength: 1, maxLength: 200 }),
    blob: b32.map((s) => `b-${s}`),
    size: fc.integer({ min: 0, max: 2 ** 40 }),
    key,
    sender: handle,
    senderDevice: device,
  })
  .map((r) => ({
    t: "cable",
    id: r.id,
    reference: `${r.originator} 2026/${String(r.serial).padStart(6, "0")}`,
    originator: r.originator,
    precedence: r.precedence,
    label: r.label,
    action: ["EMB/BEIJING", "EMB/TOKYO"].filter((u) => u !== r.originator).slice(0, 1),
    info: [] as string[],
    corrects: null,
    subject: r.subject,
    blob: r.blob,
    size: r.size,
    key: r.key,
    sender: r.sender,
    senderDevice: r.senderDevice,
  }));
const docPayload = fc.record({
  t: fc.constant("doc"),
  id: b32.map((s) => `f-${s}`),
  version: fc.integer({ min: 1, max: 1000 }),
  label,
  name: fc.string({ minLength: 1, maxLength: 200 }),
  size: fc.integer({ min: 0, max: 2 ** 40 }),
  blob: b32.map((s) => `b-${s}`),
  key,
  to: fc.oneof(
    fc.record({ kind: fc.constant("user"), name: handle }),
    fc.record({ kind: fc.constant("unit"), name: unitA }),
  ),
  sender: handle,
  senderDevice: device,
});
const anyValid = fc.oneof(textPayload, cablePayload, docPayload) as fc.Arbitrary<Record<string, unknown>>;

/** JSON text of `o` with one more member spliced in as raw text (so a `__proto__` key really is in the JSON). */
function withMember(o: Record<string, unknown>, name: string, value: unknown): string {
  const base = JSON.stringify(o);
  return `${base.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(value)}}`;
}

const hostileNames = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "polluted",
    "toString",
    "hasOwnProperty",
    "__defineGetter__",
  ),
  fc.string({ minLength: 1, maxLength: 20 }),
);
const hostileValues = fc.oneof(
  fc.constant({ polluted: "yes" }),
  fc.constant({ prototype: { polluted: "yes" } }),
  fc.constant(null),
  fc.constantFrom(1e308, -1e308, 2 ** 53, 2 ** 64, -1, 0.5, -0.5, 1e21),
  fc.boolean(),
  fc.string({ maxLength: 20 }),
  fc.array(fc.integer(), { maxLength: 5 }),
);

test("valid payloads of every kind parse back to themselves", () => {
  fc.assert(
    fc.property(anyValid, (p) => {
      assert.deepEqual(parsePayload(enc(JSON.stringify(p))), JSON.parse(JSON.stringify(p)));
      notPolluted();
    }),
    { numRuns: 300 },
  );
});

test("an unknown or inherited field (__proto__, constructor, prototype, …) is refused", () => {
  fc.assert(
    fc.property(anyValid, hostileNames, hostileValues, (p, name, value) => {
      fc.pre(!Object.hasOwn(p, name));
      assert.equal(outcome(enc(withMember(p, name, value))), "refused");
      notPolluted();
    }),
    { numRuns: 500 },
  );
});

test("a payload whose id is __proto__, constructor or prototype is refused (the finding's exploit)", () => {
  fc.assert(
    fc.property(
      fc.oneof(cablePayload, docPayload) as fc.Arbitrary<Record<string, unknown>>,
      fc.constantFrom("__proto__", "constructor", "prototype", "hasOwnProperty", "../../etc", "", "f-", "k-x"),
      (p, id) => {
        assert.equal(outcome(enc(JSON.stringify({ ...p, id }))), "refused");
        notPolluted();
      },
    ),
    { numRuns: 200 },
  );
  // The exact payload of the finding: a document for `__proto__`, with a `__proto__` member too.
  const doc = {
    t: "doc",
    id: "__proto__",
    version: 7,
    label: "UNCLASSIFIED",
    name: "x",
    size: 1,
    blob: "b-aaaaaaaaaaaaaaaaaaaaaaaaaa",
    key: toBase64(new Uint8Array(32)),
    to: { kind: "user", name: "jnovak" },
  };
  assert.equal(outcome(enc(withMember(doc, "__proto__", { polluted: "yes" }))), "refused");
  notPolluted();
});

test("a field of the wrong type, out of range or oversize is refused", () => {
  const wrong = fc.oneof(
    fc.constant(null),
    fc.constantFrom(1e308, 2 ** 53, 2 ** 64, -1, 0.5, 1e21, -(2 ** 60)),
    fc.boolean(),
    fc.constant({}),
    fc.constant({ __proto__: null }),
    fc.constant([]),
    fc.constant([["deep"]]),
    fc.constant("x".repeat(2_000_001)),
  );
  fc.assert(
    fc.property(anyValid, fc.nat(), wrong, (p, i, bad) => {
      const fields = Object.keys(p).filter((k) => k !== "t");
      const field = fields[i % fields.length]!;
      const original = p[field];
      // Skip the few replacements that are valid for that field.
      fc.pre(!(field === "corrects" && bad === null));
      fc.pre(!(field === "info" && Array.isArray(bad) && bad.length === 0));
      fc.pre(!(typeof original === "number" && typeof bad === "number" && Number.isSafeInteger(bad) && bad >= 1));
      fc.pre(!(field === "text" && typeof bad === "string" && bad.length <= 100_000));
      assert.equal(outcome(enc(JSON.stringify({ ...p, [field]: bad }))), "refused");
      notPolluted();
    }),
    { numRuns: 500 },
  );
  // Bounds, one by one.
  const text = { t: "text", text: "a".repeat(100_001) };
  assert.equal(outcome(enc(JSON.stringify(text))), "refused");
  assert.equal(outcome(enc(JSON.stringify({ t: "text", text: "a".repeat(100_000) }))), "accepted");
  fc.assert(
    fc.property(cablePayload, (c) => {
      assert.equal(outcome(enc(JSON.stringify({ ...c, subject: "s".repeat(2_001) }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, subject: "" }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, action: Array(201).fill("EMB/X") }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, action: ["EMB/TOKYO", "EMB/TOKYO"] }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, action: ["not a unit"] }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, precedence: "flash!" }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, label: "TOP SECRET" }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, key: toBase64(new Uint8Array(31)) }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, reference: "OTHER/UNIT 2026/000001" }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...c, size: 2 ** 53 }))), "refused");
    }),
    { numRuns: 50 },
  );
  fc.assert(
    fc.property(docPayload, (d) => {
      assert.equal(outcome(enc(JSON.stringify({ ...d, name: "n".repeat(1_001) }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...d, version: 0 }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...d, version: 1.5 }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...d, to: { kind: "user", name: "EMB/BEIJING" } }))), "refused");
      assert.equal(outcome(enc(JSON.stringify({ ...d, to: { kind: "unit", name: "EMB/BEIJING", x: 1 } }))), "refused");
      const { sender: _s, ...noSender } = d;
      assert.equal(outcome(enc(JSON.stringify(noSender))), "refused");
    }),
    { numRuns: 50 },
  );
  notPolluted();
});

test("deep nesting and huge inputs are refused without a stack overflow", () => {
  for (const depth of [10, 1_000, 200_000]) {
    const nest = `${"[".repeat(depth)}${"]".repeat(depth)}`;
    assert.equal(outcome(enc(`{"t":"text","text":"a","x":${nest}}`)), "refused");
    assert.equal(outcome(enc(`{"t":"text","text":${nest}}`)), "refused");
    assert.equal(outcome(enc(nest)), "refused");
    const objs = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    assert.equal(outcome(enc(objs)), "refused");
  }
  assert.equal(outcome(new Uint8Array(2 * 1024 * 1024).fill(0x20)), "refused");
  notPolluted();
});

test("random JSON and random bytes: refused with a protocol_error or accepted as a valid payload, never a crash", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
      const bytes = enc(JSON.stringify(v) ?? "null");
      if (outcome(bytes) === "accepted") assert.deepEqual(parsePayload(enc(JSON.stringify(parsePayload(bytes)))), v);
      notPolluted();
    }),
    { numRuns: 1_000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      outcome(bytes);
      notPolluted();
    }),
    { numRuns: 1_000 },
  );
  // Valid payloads with one record of them replaced by random JSON, everywhere in the tree.
  fc.assert(
    fc.property(anyValid, fc.nat(), fc.jsonValue({ maxDepth: 3 }), (p, i, junk) => {
      const fields = Object.keys(p);
      const field = fields[i % fields.length]!;
      const bytes = enc(JSON.stringify({ ...p, [field]: junk }));
      if (outcome(bytes) === "accepted") assert.equal(typeof parsePayload(bytes).t, "string");
      notPolluted();
    }),
    { numRuns: 1_000 },
  );
});
