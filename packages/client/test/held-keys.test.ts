/**
 * Issue 13 findings 2 and 3 at the unit level: the cable header parser (hostile input, like every payload), the
 * held-key records (null-prototype, never overwritten, only from the sender the payload names) and the migration of
 * a profile written before (plain objects, no senders, a planted `__proto__` record).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ValiseError, toBase64 } from "@valise/core";
import {
  MemoryKeyStore,
  acceptCable,
  acceptDocument,
  heldCable,
  heldDocument,
  migrateProfile,
  parseCableHeader,
  type CablePayload,
  type DocumentPayload,
  type ProfileState,
} from "@valise/client";

const enc = (s: string) => new TextEncoder().encode(s);
const notPolluted = () => assert.equal(({} as Record<string, unknown>).polluted, undefined);

function headerOutcome(bytes: Uint8Array): "accepted" | "refused" {
  try {
    parseCableHeader(bytes);
    return "accepted";
  } catch (e) {
    if (e instanceof ValiseError && e.code === "protocol_error") return "refused";
    throw e;
  }
}

test("cable header: valid headers parse, hostile ones are refused, nothing else is thrown", () => {
  const header = fc.record({
    v: fc.constant(1),
    subject: fc.string({ minLength: 1, maxLength: 100 }),
    body: fc.string({ maxLength: 500 }),
    attachments: fc.array(fc.record({ name: fc.string({ minLength: 1, maxLength: 50 }), size: fc.nat() }), {
      maxLength: 5,
    }),
  });
  fc.assert(
    fc.property(header, (h) =>
      assert.deepEqual(parseCableHeader(enc(JSON.stringify(h))), JSON.parse(JSON.stringify(h))),
    ),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(
      header,
      fc.constantFrom("__proto__", "constructor", "prototype", "extra"),
      fc.jsonValue({ maxDepth: 2 }),
      (h, name, value) => {
        const text = `${JSON.stringify(h).slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(value) ?? "null"}}`;
        assert.equal(headerOutcome(enc(text)), "refused");
        notPolluted();
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
      headerOutcome(enc(JSON.stringify(v) ?? "null"));
      notPolluted();
    }),
    { numRuns: 500 },
  );
  const ok = { v: 1, subject: "s", body: "b", attachments: [{ name: "a", size: 1 }] };
  for (const bad of [
    { ...ok, v: 2 },
    { ...ok, subject: "" },
    { ...ok, subject: "s".repeat(2_001) },
    { ...ok, attachments: [{ name: "a", size: -1 }] },
    { ...ok, attachments: [{ name: "a", size: 2 ** 53 }] },
    { ...ok, attachments: Array(1_001).fill({ name: "a", size: 1 }) },
    { ...ok, attachments: [{ name: "", size: 1 }] },
    { ...ok, body: 5 },
  ])
    assert.equal(headerOutcome(enc(JSON.stringify(bad))), "refused", JSON.stringify(bad).slice(0, 80));
  const protoMember = `{"v":1,"subject":"s","body":"b","attachments":[{"name":"a","size":1,"__proto__":{"polluted":1}}]}`;
  assert.equal(headerOutcome(enc(protoMember)), "refused");
  assert.equal(headerOutcome(enc(`{"v":1,"subject":"s","body":"b","attachments":${"[".repeat(100_000)}`)), "refused");
  notPolluted();
});

const KEY_A = toBase64(new Uint8Array(32).fill(1));
const KEY_B = toBase64(new Uint8Array(32).fill(2));
const cable = (over: Partial<CablePayload> = {}): CablePayload => ({
  t: "cable",
  id: "k-aaaaaaaaaaaaaaaaaaaaaaaaaa",
  reference: "HQ/ASIA-1 2026/000001",
  originator: "HQ/ASIA-1",
  precedence: "FLASH",
  label: "CONFIDENTIAL",
  action: ["EMB/BEIJING"],
  info: [],
  corrects: null,
  subject: "Evacuate",
  blob: "b-aaaaaaaaaaaaaaaaaaaaaaaaaa",
  size: 100,
  key: KEY_A,
  sender: "jnovak",
  senderDevice: "d-jnovakdevice1",
  ...over,
});
const doc = (over: Partial<DocumentPayload> = {}): DocumentPayload => ({
  t: "doc",
  id: "f-aaaaaaaaaaaaaaaaaaaaaaaaaa",
  version: 1,
  label: "UNCLASSIFIED",
  name: "report.pdf",
  size: 10,
  blob: "b-bbbbbbbbbbbbbbbbbbbbbbbbbb",
  key: KEY_A,
  to: { kind: "unit", name: "EMB/BEIJING" },
  sender: "jnovak",
  senderDevice: "d-jnovakdevice1",
  ...over,
});
const jnovak = { user: "jnovak", device: "d-jnovakdevice1" };
const mcerny = { user: "mcerny", device: "d-mcernydevice1" };

function emptyProfile(): ProfileState {
  return migrateProfile({
    version: 1,
    serverUrl: "http://x",
    handle: "pdvorak",
    deviceId: "d-pdvorakdevice",
    deviceName: "laptop",
    signaturePublicKey: "",
    signaturePrivateKey: "",
    keyPackages: [],
    inboxCursor: 0,
    conversations: {},
    pending: [],
    session: null,
  });
}

test("a cable key is taken only from the sender it names, once; a different copy is refused naming the peer", () => {
  const s = emptyProfile();
  // Spoofed: mcerny re-sends jnovak's payload (it names jnovak) with a new subject, or a new key.
  assert.match(acceptCable(s, cable({ subject: "CANCELLED" }), mcerny) ?? "", /^mcerny \(device d-mcernydevice1\)/);
  assert.equal(heldCable(s, cable().id), undefined);
  assert.equal(acceptCable(s, cable(), jnovak), null);
  assert.equal(acceptCable(s, cable(), jnovak), null, "an identical copy (another unit's group) is fine");
  for (const over of [
    { subject: "CANCELLED – take no action" },
    { key: KEY_B },
    { precedence: "ROUTINE" },
    { action: ["EMB/TOKYO"] },
    { blob: "b-cccccccccccccccccccccccccc" },
    { size: 101 },
  ] as Partial<CablePayload>[]) {
    const refused = acceptCable(s, cable(over), jnovak);
    assert.match(refused ?? "", /jnovak .*differs from the one held/, JSON.stringify(over));
    const refused2 = acceptCable(s, cable({ ...over, sender: "mcerny", senderDevice: mcerny.device }), mcerny);
    assert.match(refused2 ?? "", /^mcerny .*differs/, JSON.stringify(over));
  }
  assert.deepEqual(heldCable(s, cable().id), cable(), "the original is kept");
  assert.equal(Object.getPrototypeOf(s.cables), null);
});

test("a document version key likewise; records are null-prototype, `__proto__` is just a missing id", () => {
  const s = emptyProfile();
  assert.equal(acceptDocument(s, doc(), jnovak), null);
  assert.match(acceptDocument(s, doc({ name: "evil.exe" }), jnovak) ?? "", /differs/);
  assert.match(acceptDocument(s, doc({ key: KEY_B }), mcerny) ?? "", /^mcerny .*naming jnovak/);
  assert.equal(acceptDocument(s, doc({ version: 2, sender: "mcerny", senderDevice: mcerny.device }), mcerny), null);
  assert.equal(heldDocument(s, doc().id, 1)?.name, "report.pdf");
  assert.equal(heldDocument(s, "__proto__", 1), undefined);
  assert.equal(heldCable(s, "__proto__"), undefined);
  assert.equal(heldCable(s, "constructor"), undefined);
  assert.equal(Object.getPrototypeOf(s.documents), null);
  assert.equal(Object.getPrototypeOf(s.documents![doc().id]), null);
  notPolluted();
});

test("a profile saved before this change loads: plain records migrated, legacy senders blank, planted records dropped", async () => {
  const store = new MemoryKeyStore();
  const legacyCable: Record<string, unknown> = { ...cable() };
  delete legacyCable.sender;
  delete legacyCable.senderDevice;
  const legacyDoc: Record<string, unknown> = { ...doc() };
  delete legacyDoc.sender;
  delete legacyDoc.senderDevice;
  const base = emptyProfile();
  // What an earlier version wrote (JSON), with a hostile `__proto__` record planted by a peer before the fix.
  const json = JSON.stringify({
    ...base,
    conversations: {
      "c-conversation1": {
        id: "c-conversation1",
        kind: "unit",
        label: "UNCLASSIFIED",
        unit: "EMB/X",
        peer: null,
        group: "",
        cursor: 3,
      },
    },
    cables: { [cable().id]: legacyCable, "k-bbbbbbbbbbbbbbbbbbbbbbbbbb": legacyCable },
    documents: { [doc().id]: { "1": legacyDoc } },
    outbox: [
      {
        conversation: { kind: "unit", unit: "EMB/X", label: "UNCLASSIFIED" },
        payload: legacyDoc,
        idempotencyKey: "abc",
      },
    ],
  }).replace('"documents":{', `"documents":{"__proto__":{"7":${JSON.stringify(legacyDoc)}},`);
  await store.save(JSON.parse(json) as ProfileState);
  const s = migrateProfile((await store.load())!);
  notPolluted();
  assert.deepEqual({ ...heldCable(s, cable().id) }, { ...cable(), sender: "", senderDevice: "" });
  assert.equal(heldCable(s, "k-bbbbbbbbbbbbbbbbbbbbbbbbbb"), undefined, "a record filed under another id is dropped");
  assert.equal(heldDocument(s, doc().id, 1)?.name, "report.pdf");
  assert.equal(heldDocument(s, "__proto__", 7), undefined);
  assert.equal(Object.keys(s.documents!).join(), doc().id);
  assert.equal(s.conversations["c-conversation1"]?.cursor, 3);
  assert.equal(Object.getPrototypeOf(s.conversations), null);
  const out = s.outbox![0]!.payload;
  assert.equal(out.sender, "pdvorak", "own outbox entries are completed with this device as sender");
  assert.equal(out.senderDevice, "d-pdvorakdevice");
  // A legacy record takes an identical copy silently (the record is kept as it was); a different one is refused.
  assert.equal(acceptCable(s, cable(), jnovak), null);
  assert.equal(heldCable(s, cable().id)?.sender, "");
  assert.match(acceptCable(s, cable({ subject: "CANCELLED" }), jnovak) ?? "", /differs/);
  // And it survives a save/load round trip.
  await store.save(s);
  const again = migrateProfile((await store.load())!);
  assert.deepEqual({ ...heldCable(again, cable().id) }, { ...heldCable(s, cable().id) });
});
