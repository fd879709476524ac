import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  PRECEDENCES,
  formatCableReference,
  isValiseError,
  parseCableReference,
  parsePrecedence,
  precedenceRank,
} from "../src/index.js";

test("precedence ranks FLASH > IMMEDIATE > PRIORITY > ROUTINE; parsing is case-insensitive and closed", () => {
  assert.deepEqual(
    [...PRECEDENCES].sort((a, b) => precedenceRank(b) - precedenceRank(a)),
    ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"],
  );
  assert.equal(parsePrecedence("flash"), "FLASH");
  for (const bad of ["", "URGENT", "FLASH ", "routine1"])
    assert.throws(
      () => parsePrecedence(bad),
      (e: unknown) => isValiseError(e) && e.code === "bad_request",
    );
});

test("cable references print as ORIGINATOR YEAR/NNNNNN and parse back (property)", () => {
  assert.equal(formatCableReference({ originator: "EMB/BEIJING", year: 2026, serial: 123 }), "EMB/BEIJING 2026/000123");
  const unit = fc.stringMatching(/^[A-Z][A-Z0-9_-]{0,8}(\/[A-Z0-9][A-Z0-9_-]{0,8}){0,2}$/);
  fc.assert(
    fc.property(unit, fc.integer({ min: 1000, max: 9999 }), fc.integer({ min: 1, max: 99_999_999 }), (u, y, n) => {
      const r = { originator: u, year: y, serial: n };
      assert.deepEqual(parseCableReference(formatCableReference(r)), r);
    }),
  );
  for (const bad of ["EMB/BEIJING 2026/123", "emb/beijing 2026/000123", "EMB/BEIJING/2026/000123", ""])
    assert.throws(
      () => parseCableReference(bad),
      (e: unknown) => isValiseError(e) && e.code === "bad_request",
    );
});
