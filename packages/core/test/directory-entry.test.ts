import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeDirectoryEntry, fromUtf8, parseDirectoryEntry, utf8, type DirectoryEntry } from "../src/index.js";

const samples: DirectoryEntry[] = [
  { v: 1, type: "unit.add", unit: "HQ/ASIA-1", maxLabel: "SECRET/ASIA", time: 1 },
  {
    v: 1,
    type: "user.add",
    user: "jnovak",
    units: ["HQ/ASIA-1", "EMB/BEIJING"],
    clearance: "SECRET",
    role: "user",
    time: 2,
  },
  { v: 1, type: "user.clearance", user: "jnovak", clearance: "CONFIDENTIAL/ASIA", time: 3 },
  { v: 1, type: "device.add", user: "jnovak", device: "d-aaaaaaaaaa", name: "laptop “é”", key: "AAEC", time: 4 },
  { v: 1, type: "device.revoke", user: "jnovak", device: "d-aaaaaaaaaa", time: 5 },
];

test("directory entries encode canonically (sorted keys, no whitespace) and parse back", () => {
  assert.equal(
    fromUtf8(encodeDirectoryEntry(samples[3]!)),
    '{"device":"d-aaaaaaaaaa","key":"AAEC","name":"laptop “é”","time":4,"type":"device.add","user":"jnovak","v":1}',
  );
  // user.add units are sorted and deduplicated; fields outside the type are not encoded.
  const extra = { ...samples[1]!, units: ["B/B", "A/A", "B/B"], password: "x" } as unknown as DirectoryEntry;
  assert.equal(
    fromUtf8(encodeDirectoryEntry(extra)),
    '{"clearance":"SECRET","role":"user","time":2,"type":"user.add","units":["A/A","B/B"],"user":"jnovak","v":1}',
  );
  for (const e of samples) {
    const p = parseDirectoryEntry(encodeDirectoryEntry(e));
    assert.ok(p.ok);
    assert.deepEqual(encodeDirectoryEntry(p.entry), encodeDirectoryEntry(e));
  }
});

test("non-canonical or malformed entries are rejected, never thrown", () => {
  const bad = [
    '{"v":1,"type":"unit.add","unit":"A","maxLabel":"S","time":1}', // keys not sorted
    '{"maxLabel":"S", "time":1,"type":"unit.add","unit":"A","v":1}', // whitespace
    '{"maxLabel":"S","time":1,"type":"unit.add","unit":"A","v":2}', // version
    '{"maxLabel":"S","time":1,"type":"unit.drop","unit":"A","v":1}', // type
    '{"maxLabel":"S","time":1.5,"type":"unit.add","unit":"A","v":1}', // time
    '{"maxLabel":"S","time":1,"type":"unit.add","unit":"A","v":1,"x":1}', // extra field
    '{"time":1,"type":"unit.add","unit":"A","v":1}', // missing field
    '{"maxLabel":1,"time":1,"type":"unit.add","unit":"A","v":1}', // wrong kind
    '{"clearance":"S","role":"user","time":2,"type":"user.add","units":["B","A"],"user":"j","v":1}', // unsorted units
    '{"maxLabel":"\\u0053","time":1,"type":"unit.add","unit":"A","v":1}', // escaped differently
    "[]",
    "null",
    "",
  ];
  for (const b of bad) assert.equal(parseDirectoryEntry(utf8(b)).ok, false, b);
  assert.equal(parseDirectoryEntry(Uint8Array.of(0xff, 0xfe)).ok, false);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      parseDirectoryEntry(b);
    }),
  );
});
