/**
 * The device's history store and search index (issues 14 part 1, 15 part 3) in process: messages recorded once,
 * search over messages, cables (subject, body, reference, sender), document and attachment names (prefix, accents,
 * AND, kinds), and the Node sealed file: ciphertext at rest, refused when altered or opened with another key.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  HistoryStore,
  MemorySealedRecord,
  SearchIndex,
  tokenize,
  type HistoryData,
  type ReceivedItem,
} from "@valise/client";
import { FileSealedRecord } from "@valise/client/node/sealed-file";

const msg = (seq: number, text: string, conversation = "c-aaaa"): ReceivedItem => ({
  type: "message",
  from: "amira",
  device: "d-1",
  conversation,
  kind: "direct",
  label: "SECRET/ASIA",
  text,
  seq,
  time: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
});

test("tokenize folds case and accents", () => {
  assert.deepEqual(tokenize("Négociation à Tōkyō, 2026!"), ["negociation", "a", "tokyo", "2026"]);
});

test("search: prefix AND, exact quotes, kinds, replace and remove", () => {
  const ix = new SearchIndex();
  const base = { from: "amira", label: "SECRET", time: "2026-01-01T00:00:00.000Z" };
  ix.add({ id: "m:1", kind: "message", title: "", text: "The negotiation in Tōkyō went well", ...base });
  ix.add({ id: "m:2", kind: "message", title: "", text: "Negotiations stalled in Beijing", ...base });
  ix.add({ id: "c:1", kind: "cable", title: "Visa policy", text: "", reference: "EMB/BEIJING-2026-0001", ...base });
  assert.deepEqual(
    ix.search("nego tok").map((h) => h.doc.id),
    ["m:1"],
  );
  assert.deepEqual(
    ix
      .search("negotiation")
      .map((h) => h.doc.id)
      .sort(),
    ["m:1", "m:2"],
  );
  assert.deepEqual(
    ix.search('"negotiation"').map((h) => h.doc.id),
    ["m:1"],
  );
  assert.deepEqual(ix.search("nego", { kinds: ["cable"] }), []);
  assert.deepEqual(
    ix.search("2026 0001").map((h) => h.doc.id),
    ["c:1"],
  );
  assert.deepEqual(ix.search("nothing-here"), []);
  ix.add({ id: "c:1", kind: "cable", title: "Visa policy", text: "body mentions Tokyo", ...base });
  assert.deepEqual(
    ix
      .search("tokyo")
      .map((h) => h.doc.id)
      .sort(),
    ["c:1", "m:1"],
  );
  ix.remove("m:1");
  assert.deepEqual(
    ix.search("tokyo").map((h) => h.doc.id),
    ["c:1"],
  );
  assert.equal(ix.size, 2);
  assert.match(ix.search("beij")[0]!.snippet, /Beijing/);
});

test("history: records a sync once, sent messages, cables and documents are searchable", async () => {
  const rec = new MemorySealedRecord<HistoryData>();
  const h = await HistoryStore.open(rec);
  assert.equal(h.record([msg(1, "first"), msg(2, "second about the treaty")]), 2);
  assert.equal(h.record([msg(1, "first")]), 0, "the same seq is kept once");
  h.recordSent({
    conversation: "c-aaaa",
    seq: 3,
    from: "pdvorak",
    text: "reply",
    label: "SECRET/ASIA",
    time: "2026-01-02T00:00:00Z",
  });
  h.record([
    {
      type: "cable",
      from: "jnovak",
      conversation: "",
      label: "SECRET/ASIA",
      text: "Asset list",
      seq: 0,
      time: "2026-01-03T00:00:00Z",
      id: "cb-1",
      reference: "HQ/ASIA-1-2026-0007",
      precedence: "FLASH",
      originator: "HQ/ASIA-1",
      action: ["EMB/BEIJING"],
      info: [],
      corrects: null,
    },
  ]);
  h.noteCable({
    id: "cb-1",
    reference: "HQ/ASIA-1-2026-0007",
    subject: "Asset list",
    from: "jnovak",
    originator: "HQ/ASIA-1",
    label: "SECRET/ASIA",
    time: "2026-01-03T00:00:00Z",
    body: "The courier arrives Thursday",
    attachments: ["manifest-scan.pdf"],
  });
  h.noteDocument({
    id: "doc-1",
    version: 2,
    name: "Budget 2027.xlsx",
    label: "CONFIDENTIAL",
    from: "amira",
    time: "2026-01-04T00:00:00Z",
  });
  await h.save();
  const again = await HistoryStore.open(rec);
  assert.deepEqual(
    again.messages("c-aaaa").map((m) => m.seq),
    [1, 2, 3],
  );
  assert.deepEqual(
    again.search("treaty").map((x) => x.doc.id),
    ["m:c-aaaa/2"],
  );
  assert.deepEqual(
    again.search("courier").map((x) => x.doc.kind),
    ["cable"],
  );
  assert.deepEqual(
    again
      .search("2026 0007")
      .map((x) => x.doc.kind)
      .sort(),
    ["attachment", "cable"],
  );
  assert.deepEqual(
    again.search("scan").map((x) => x.doc.kind),
    ["attachment"],
  );
  assert.deepEqual(
    again.search("budget").map((x) => x.doc.ref),
    ["doc-1/2"],
  );
  assert.deepEqual(
    again.search("jnovak", { kinds: ["cable"] }).map((x) => x.doc.ref),
    ["cb-1"],
  );
  assert.deepEqual(
    again.conversations().map((c) => [c.conversation, c.count, c.cursor]),
    [["c-aaaa", 3, 3]],
  );
});

test("prepareIndex: built in slices ahead of the first search, the same answers; a search or an arrival meanwhile", async () => {
  const fill = async () => {
    const h = await HistoryStore.open(new MemorySealedRecord<HistoryData>());
    h.record(Array.from({ length: 3000 }, (_, i) => msg(i + 1, `report ${i % 7 === 0 ? "embassy" : "note"} ${i}`)));
    return h;
  };
  const lazy = await fill();
  const want = lazy.search("emb", { limit: 20 }).map((x) => x.doc.id);
  assert.equal(want.length, 20);

  // In slices (1 ms: many pauses), then the same answers as the index built at once.
  const h = await fill();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  await h.prepareIndex(1);
  clearInterval(timer);
  assert.ok(ticks > 0, "the build never let another task run");
  assert.equal(h.index.size, 3000);
  assert.deepEqual(
    h.search("emb", { limit: 20 }).map((x) => x.doc.id),
    want,
  );

  // A message that arrives during the build is found (the build starts over without losing it).
  const h2 = await fill();
  const building = h2.prepareIndex(1);
  await new Promise((r) => setTimeout(r, 0));
  h2.record([msg(5000, "a quokka arrived during the build")]);
  await building;
  assert.equal(h2.search("quokka").length, 1);
  assert.equal(h2.index.size, 3001);

  // A search before the build ends answers at once, completely; the background build then stops.
  const h3 = await fill();
  const b3 = h3.prepareIndex(1);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(
    h3.search("emb", { limit: 20 }).map((x) => x.doc.id),
    want,
  );
  const ix = h3.index;
  await b3;
  assert.equal(h3.index, ix, "the background build replaced the index a search had built");
});

test("the Node sealed file: ciphertext at rest, mode 0600, refused when altered or under another key", async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-sealed-"));
  try {
    const file = join(dir, "history.sealed");
    const key = crypto.getRandomValues(new Uint8Array(32));
    const rec = new FileSealedRecord<HistoryData>(file, key, "history:d-1");
    const h = await HistoryStore.open(rec);
    h.record([msg(1, "the password is swordfish")]);
    await h.save();
    const raw = readFileSync(file);
    assert.ok(!raw.includes(Buffer.from("swordfish")), "no plaintext on disk");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(
      (await HistoryStore.open(new FileSealedRecord<HistoryData>(file, key, "history:d-1"))).messages().length,
      1,
    );
    const other = crypto.getRandomValues(new Uint8Array(32));
    await assert.rejects(new FileSealedRecord<HistoryData>(file, other, "history:d-1").load(), /cannot open/);
    await assert.rejects(new FileSealedRecord<HistoryData>(file, key, "history:d-2").load(), /cannot open/);
    raw[raw.length - 20]! ^= 1;
    writeFileSync(file, raw);
    await assert.rejects(rec.load(), /cannot open/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
