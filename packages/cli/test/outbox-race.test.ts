/**
 * Concurrent first sends to one person (two documents shared at once, while a background sync flushes the outbox)
 * create one conversation and send each key once. Before: the sender and the sync each flushed the same outbox
 * entry, each created its own conversation and sent the same idempotency key to both — the server refused the
 * second with 409 and the upload failed in the web app (seen in CI).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bytesSource, collect } from "@valise/client";
import { world } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";

test("concurrent shares to a new peer and a concurrent sync: one conversation, every key sent once", async () => {
  const w = await world("sqlite", [
    { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
    { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA },
  ]);
  try {
    const desk = await w.enroll("jnovak");
    const beijing = await w.enroll("pdvorak");
    const bytes = (n: number) => new Uint8Array(64 * 1024).fill(n);
    let done = false;
    const syncing = (async () => {
      let n = 0;
      while (!done) {
        await desk.sync();
        n++;
      }
      return n;
    })();
    const puts = await Promise.all(
      [1, 2, 3].map((n) =>
        desk.documents.put({ to: "pdvorak", label: ASIA, name: `paper-${n}.pdf`, source: bytesSource(bytes(n)) }),
      ),
    ).finally(() => (done = true));
    assert.ok((await syncing) >= 1);

    const direct = (await desk.transport.conversations()).filter((c) => c.kind === "direct" && c.label === ASIA);
    assert.equal(direct.length, 1, `one direct conversation, not ${direct.length}`);
    const names: string[] = [];
    for (let i = 0; i < 3 && names.length < 3; i++)
      for (const it of await beijing.sync()) if (it.type === "document") names.push(it.text);
    names.sort();
    assert.deepEqual(names, ["paper-1.pdf", "paper-2.pdf", "paper-3.pdf"], "each key arrived exactly once");
    for (const [i, p] of puts.entries()) {
      const got = await beijing.documents.get(p.id);
      assert.deepEqual(await collect(got.bytes), bytes(i + 1));
    }
  } finally {
    await w.close();
  }
});
