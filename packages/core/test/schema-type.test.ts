/**
 * The wire contract's schema builder (`schema-type.ts`) builds what TypeBox builds — the same JSON Schema and the same
 * hidden markers — so the server can compose the contract with TypeBox and validate it as before, and the wire
 * module loads without the `typebox` package at run time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Type as TypeBox } from "typebox";
import { Value } from "typebox/value";
import { Type } from "../src/schema-type.js";

/** Enumerable fields and TypeBox's hidden markers, recursively. */
function shape(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(shape);
  if (typeof s !== "object" || s === null) return s;
  const out: Record<string, unknown> = {};
  for (const k of Object.getOwnPropertyNames(s).sort()) {
    const d = Object.getOwnPropertyDescriptor(s, k)!;
    out[`${k}${d.enumerable ? "" : " (hidden)"}`] = shape(d.value);
  }
  return out;
}

const build = (T: typeof Type) =>
  T.Object(
    {
      id: T.String({ pattern: "^c-[0-9a-f]{32}$", maxLength: 34 }),
      seq: T.Integer({ minimum: 0 }),
      ratio: T.Optional(T.Number({ maximum: 1 })),
      ok: T.Boolean(),
      gone: T.Union([T.Null(), T.Literal("revoked"), T.Literal(3), T.Literal(true)]),
      items: T.Array(T.Object({ a: T.Optional(T.String()), b: T.Unknown() }), { maxItems: 10 }),
      note: T.Optional(T.Union([T.String(), T.Null()])),
      open: T.Record(T.String(), T.Unknown()),
    },
    { additionalProperties: false },
  );

test("the builder's schemas are TypeBox's: enumerable JSON Schema and hidden markers alike", () => {
  const ours = build(Type);
  const theirs = build(TypeBox);
  assert.deepEqual(shape(ours), shape(theirs));
  assert.deepEqual(JSON.parse(JSON.stringify(ours)), JSON.parse(JSON.stringify(theirs)));
  assert.deepEqual((ours as { required: string[] }).required, ["id", "seq", "ok", "gone", "items", "open"]);
});

test("TypeBox composes the builder's schemas: an optional field of ours is optional in TypeBox's Object", () => {
  const composed = TypeBox.Object({ inner: build(Type), extra: Type.Optional(Type.String()) });
  assert.deepEqual((composed as { required?: string[] }).required, ["inner"]);
  const good = {
    inner: { id: `c-${"a".repeat(32)}`, seq: 1, ok: true, gone: null, items: [{ b: 1 }], open: { any: [1] } },
  };
  assert.equal(Value.Check(composed, good), true);
  assert.equal(Value.Check(composed, { inner: { ...good.inner, seq: -1 } }), false);
  assert.equal(Value.Check(composed, { inner: { ...good.inner, gone: "deleted" } }), false);
  assert.equal(Value.Check(composed, { inner: { ...good.inner, other: 1 } }), false);
  assert.equal(Value.Check(composed, { inner: { ...good.inner, id: "c-1" } }), false);
});

test("a literal of another type is refused when the schema is built", () => {
  assert.throws(() => Type.Literal({} as unknown as string), /a literal must be a string, number or boolean/);
});

test("the wire contract imports typebox for its types only (nothing at run time)", () => {
  const js = readFileSync(fileURLToPath(new URL("../src/wire.js", import.meta.url)), "utf8");
  assert.doesNotMatch(js, /from "typebox"/);
  const builder = readFileSync(fileURLToPath(new URL("../src/schema-type.js", import.meta.url)), "utf8");
  assert.doesNotMatch(builder, /from "typebox"/);
});
