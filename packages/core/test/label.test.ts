import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseLabel, formatLabel, dominates, CLASSIFICATIONS, isValiseError } from "../src/index.js";

test("parses classification and compartments, prints canonically", () => {
  const l = parseLabel("CONFIDENTIAL/NATO,ASIA,ASIA");
  assert.equal(l.level, "CONFIDENTIAL");
  assert.deepEqual(l.compartments, ["ASIA", "NATO"]);
  assert.equal(formatLabel(l), "CONFIDENTIAL/ASIA,NATO");
  assert.equal(formatLabel(parseLabel("SECRET")), "SECRET");
});

test("rejects malformed labels with code bad_label", () => {
  for (const bad of [
    "",
    "TOPSECRET",
    "secret",
    "SECRET/",
    "SECRET/asia",
    "SECRET/ASIA,",
    "SECRET//ASIA",
    " SECRET",
    "SECRET/A B",
  ]) {
    assert.throws(
      () => parseLabel(bad),
      (e: unknown) => isValiseError(e) && e.code === "bad_label",
      bad,
    );
  }
});

test("dominance: level >= and compartments superset", () => {
  assert.ok(dominates(parseLabel("SECRET/ASIA,NATO"), parseLabel("CONFIDENTIAL/ASIA")));
  assert.ok(!dominates(parseLabel("SECRET/NATO"), parseLabel("CONFIDENTIAL/ASIA")));
  assert.ok(!dominates(parseLabel("RESTRICTED/ASIA"), parseLabel("CONFIDENTIAL/ASIA")));
  assert.ok(dominates(parseLabel("UNCLASSIFIED"), parseLabel("UNCLASSIFIED")));
});

const arbLabel = fc
  .record({
    level: fc.constantFrom(...CLASSIFICATIONS),
    compartments: fc.uniqueArray(fc.stringMatching(/^[A-Z][A-Z0-9-]{0,6}$/), { maxLength: 5 }),
  })
  .map((r) => (r.compartments.length ? `${r.level}/${r.compartments.join(",")}` : r.level));

test("property: parse∘format is identity on canonical form; dominance is reflexive and transitive", () => {
  fc.assert(
    fc.property(arbLabel, arbLabel, arbLabel, (a, b, c) => {
      const la = parseLabel(a);
      assert.deepEqual(parseLabel(formatLabel(la)), la);
      assert.ok(dominates(la, la));
      const [pa, pb, pc] = [la, parseLabel(b), parseLabel(c)];
      if (dominates(pa, pb) && dominates(pb, pc)) assert.ok(dominates(pa, pc));
    }),
  );
});
