import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { toBase64, fromBase64, toBase64Url, fromBase64Url, toHex, fromHex, fromUtf8 } from "../src/index.js";

test("base64/base64url/hex round-trip and agree with Node's Buffer", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      assert.equal(toBase64(b), Buffer.from(b).toString("base64"));
      assert.deepEqual(fromBase64(toBase64(b)), b);
      assert.equal(toBase64Url(b), Buffer.from(b).toString("base64url"));
      assert.deepEqual(fromBase64Url(toBase64Url(b)), b);
      assert.deepEqual(fromHex(toHex(b)), b);
    }),
  );
});

test("strict decoders reject garbage", () => {
  for (const bad of ["A", "AB=C", "AB==AB==", "QQ=\n=", "QR==", "!!!!"]) assert.throws(() => fromBase64(bad), bad);
  assert.throws(() => fromHex("abc"));
  assert.throws(() => fromUtf8(new Uint8Array([0xff, 0xfe])));
});
