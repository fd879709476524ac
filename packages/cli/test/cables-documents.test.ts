/**
 * Issue 3's promises end to end through a real server on 127.0.0.1 (SQLite, and PostgreSQL when configured):
 * two posts and a desk exchange cables with precedence, reference numbers and receipts, and share a document with
 * versions; the ASIA compartment is unreadable to an uncleared colleague in the same unit — through the API (403)
 * and with the raw ciphertext in hand; a relabelled item is refused; a clearance revocation cuts the user off before
 * it is acknowledged; no subject, body, file name or file content reaches the server's disk or logs.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { isValiseError, fromBase64 } from "@valise/core";
import { bytesSource, collect, type ValiseClient } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { world, type World } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA },
  { handle: "ksvoboda", units: ["EMB/TOKYO"], clearance: ASIA },
  // Same unit as pdvorak, cleared CONFIDENTIAL but not for the ASIA compartment.
  { handle: "mcerny", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL" },
  { handle: "officer", units: ["HQ/SECURITY"], clearance: "SECRET/ASIA,NATO", role: "officer" as const },
];

const code = (c: string) => (e: unknown) => isValiseError(e) && e.code === c;

async function rejectsWith(p: Promise<unknown>, c: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isValiseError(e), String(e));
    assert.equal(e.code, c, e.message);
    return true;
  });
}

/** Every file under a directory (the server's data dir: database, WAL, blobs). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function setup(kind: "sqlite" | "postgres"): Promise<{
  w: World;
  desk: ValiseClient;
  beijing: ValiseClient;
  tokyo: ValiseClient;
  uncleared: ValiseClient;
  officer: ValiseClient;
}> {
  const w = await world(kind, people);
  return {
    w,
    desk: await w.enroll("jnovak"),
    beijing: await w.enroll("pdvorak"),
    tokyo: await w.enroll("ksvoboda"),
    uncleared: await w.enroll("mcerny"),
    officer: await w.enroll("officer"),
  };
}

for (const kind of DATABASE_KINDS) {
  describe(`cables and documents on ${kind}`, { timeout: 180_000 }, () => {
    test("a desk sends a cable to two posts: reference, precedence, receipts; an uncleared colleague gets nothing", async () => {
      const { w, desk, beijing, tokyo, uncleared } = await setup(kind);
      try {
        const attachment = pseudoRandom(2.5 * 1024 * 1024, 7);
        const sent = await desk.cables.send({
          action: ["EMB/BEIJING"],
          info: ["EMB/TOKYO"],
          precedence: "IMMEDIATE",
          label: ASIA,
          subject: "SUBJ-MARKER-81 talks",
          body: "BODY-MARKER-82 instructions for the talks",
          attachments: [{ name: "FILENAME-MARKER-83.pdf", source: bytesSource(attachment) }],
        });
        const year = new Date().getUTCFullYear();
        assert.equal(sent.reference, `HQ/ASIA-1 ${year}/000001`);
        const second = await desk.cables.send({
          action: ["EMB/TOKYO"],
          precedence: "ROUTINE",
          label: "UNCLASSIFIED",
          subject: "routine note",
          body: "nothing to see",
        });
        assert.equal(second.reference, `HQ/ASIA-1 ${year}/000002`, "one series per originator and year, no gaps");

        // The ACTION post: the cable arrives in a sync, opens, and the receipt shows delivered and read.
        const items = await beijing.sync();
        const c = items.find((i) => i.type === "cable");
        assert.ok(c && c.type === "cable");
        assert.equal(c.reference, sent.reference);
        assert.equal(c.precedence, "IMMEDIATE");
        assert.equal(c.text, "SUBJ-MARKER-81 talks");
        assert.deepEqual(c.action, ["EMB/BEIJING"]);
        assert.deepEqual(c.info, ["EMB/TOKYO"]);
        let saved: Uint8Array | null = null;
        const opened = await beijing.cables.open(sent.reference, {
          onAttachment: async (_a, bytes) => {
            saved = await collect(bytes);
          },
        });
        assert.equal(opened.body, "BODY-MARKER-82 instructions for the talks");
        assert.deepEqual(opened.attachments, [{ name: "FILENAME-MARKER-83.pdf", size: attachment.length }]);
        assert.equal(sha(saved!), sha(attachment));
        const rb = opened.cable.receipts.find((r) => r.unit === "EMB/BEIJING")!;
        assert.equal(rb.role, "action");
        assert.equal(rb.deliveredBy, "pdvorak");
        assert.equal(rb.readBy, "pdvorak");
        const rt = opened.cable.receipts.find((r) => r.unit === "EMB/TOKYO")!;
        assert.equal(rt.role, "info");
        assert.equal(rt.readAt, null);

        // The INFO post gets both cables, the IMMEDIATE one first.
        const titems = (await tokyo.sync()).filter((i) => i.type === "cable");
        assert.deepEqual(
          titems.map((i) => (i.type === "cable" ? i.reference : "")),
          [sent.reference, second.reference],
        );
        const seen = await desk.cables.list();
        const row = seen.find((x) => x.id === sent.id)!;
        assert.ok(row.receipts.find((r) => r.unit === "EMB/TOKYO")!.deliveredAt !== null);
        assert.equal(row.subject, "SUBJ-MARKER-81 talks");

        // Same unit, no ASIA: no item, 403 not_cleared through every door, and no key anywhere on the device.
        const u = await uncleared.sync();
        assert.equal(u.filter((i) => i.type === "cable").length, 0);
        await rejectsWith(uncleared.transport.cable(sent.id), "not_cleared");
        await rejectsWith(uncleared.transport.cableByReference(sent.reference), "not_cleared");
        await rejectsWith(uncleared.transport.readBlob(opened.cable.blob), "not_cleared");
        assert.ok(!(await uncleared.cables.list()).some((x) => x.id === sent.id));
        await rejectsWith(uncleared.cables.open(sent.reference), "not_cleared");
        // With the raw ciphertext handed over (server access), the device still holds no key for it: it was never
        // a member of a group that carried one.
        const blobFile = filesUnder(w.server.db.dataDir).find((f) => f.includes(opened.cable.blob));
        assert.ok(blobFile, "the blob is stored once on the server's disk");
        const raw = readFileSync(blobFile);
        assert.equal(raw.length, opened.cable.size);
        assert.ok(!uncleared.heldKeys().cables.includes(sent.id), "no key on the uncleared device");
        for (const conv of uncleared.conversationList()) assert.notEqual(conv.label, ASIA);
        for (const conv of desk.conversationList().filter((x) => x.label === ASIA))
          assert.ok(
            !desk.conversationMembers(conv.id).some((m) => m.user === "mcerny"),
            `mcerny's device is not in the ${conv.kind} group ${conv.id}`,
          );
        // The right key with a relabelled AAD (what a server relabelling SECRET/ASIA → UNCLASSIFIED would need):
        // decryption fails; with the true label it succeeds.
        const key = fromBase64(beijing.cableKey(sent.id)!);
        const cipher = nodeStreamCipher();
        const header = raw.subarray(0, cipher.headerSize);
        const body = raw.subarray(cipher.headerSize);
        async function* once(b: Uint8Array) {
          yield b;
        }
        await assert.rejects(
          collect(cipher.decrypt(key, header, { objectId: sent.id, version: 1, label: "UNCLASSIFIED" }, once(body), 0)),
          code("protocol_error"),
        );
        assert.ok(
          (await collect(cipher.decrypt(key, header, { objectId: sent.id, version: 1, label: ASIA }, once(body), 0)))
            .length > attachment.length,
        );

        // No subject, body, file name or content on the server's disk or in its logs.
        const markers = ["SUBJ-MARKER-81", "BODY-MARKER-82", "FILENAME-MARKER-83"].map((m) => Buffer.from(m));
        const contentProbe = Buffer.from(attachment.subarray(100_000, 100_064));
        for (const f of filesUnder(w.server.db.dataDir)) {
          const bytes = readFileSync(f);
          for (const m of [...markers, contentProbe])
            assert.equal(bytes.indexOf(m), -1, `${m.toString("hex").slice(0, 16)} found in ${f}`);
        }
        const logs = w.server.logLines.join("\n");
        for (const m of markers) assert.ok(!logs.includes(m.toString()), "marker in server log");
      } finally {
        await w.close();
      }
    });

    test("a server that relabels or re-prioritises a cable is caught; a cable cannot be edited", async () => {
      const { w, desk, beijing } = await setup(kind);
      try {
        const sent = await desk.cables.send({
          action: ["EMB/BEIJING"],
          precedence: "ROUTINE",
          label: ASIA,
          subject: "to be relabelled",
          body: "secret body",
        });
        await beijing.sync();
        await w.server.store.handle.db
          .updateTable("cables")
          .set({ label: "UNCLASSIFIED" } as never)
          .where("id", "=", sent.id)
          .execute();
        await rejectsWith(beijing.cables.open(sent.reference), "protocol_error");
        const listed = (await beijing.cables.list()).find((x) => x.id === sent.id);
        assert.ok(listed?.problem && /label/.test(listed.problem), "the listing flags the mismatch");
        assert.equal(listed.subject, null);
        // No route edits a released cable.
        const res = await fetch(new URL(`/v1/cables/${sent.id}`, w.server.url), {
          method: "PUT",
          headers: { authorization: `Bearer ${desk.transport.token}`, "content-type": "application/json" },
          body: JSON.stringify({ precedence: "FLASH" }),
        });
        assert.equal(res.status, 404);
      } finally {
        await w.close();
      }
    });

    test("documents: upload with versions, download, resumable both ways, uncleared colleague refused", async () => {
      const { w, desk, beijing, uncleared } = await setup(kind);
      try {
        const v1 = pseudoRandom(3 * 1024 * 1024 + 5, 11);
        const v2 = pseudoRandom(1024 * 1024 - 1, 12);
        const progress: number[] = [];
        const put = await desk.documents.put(
          { to: "pdvorak", label: ASIA, name: "DOCNAME-MARKER-84.docx", source: bytesSource(v1) },
          (done) => progress.push(done),
        );
        assert.equal(put.version, 1);
        assert.ok(progress.length >= 2 && progress.at(-1)! > v1.length, "progress reported up to the ciphertext size");
        const items = await beijing.sync();
        const d = items.find((i) => i.type === "document");
        assert.ok(d && d.type === "document");
        assert.equal(d.text, "DOCNAME-MARKER-84.docx");
        assert.equal(d.id, put.id);
        const got = await beijing.documents.get(put.id);
        assert.equal(sha(await collect(got.bytes)), sha(v1));
        assert.equal(got.name, "DOCNAME-MARKER-84.docx");

        const put2 = await desk.documents.put({
          document: put.id,
          name: "DOCNAME-MARKER-84-v2.docx",
          source: bytesSource(v2),
        });
        assert.equal(put2.version, 2);
        await beijing.sync();
        const listed = (await beijing.documents.list()).find((x) => x.id === put.id)!;
        assert.deepEqual(
          listed.versions.map((v) => [v.version, v.name]),
          [
            [1, "DOCNAME-MARKER-84.docx"],
            [2, "DOCNAME-MARKER-84-v2.docx"],
          ],
        );
        assert.equal(sha(await collect((await beijing.documents.get(put.id)).bytes)), sha(v2));
        assert.equal(sha(await collect((await beijing.documents.get(put.id, { version: 1 })).bytes)), sha(v1));

        // Uncleared colleague in the recipient's unit: 403 not_cleared for metadata and bytes; not listed.
        await rejectsWith(uncleared.transport.document(put.id), "forbidden");
        const unitDoc = await desk.documents.put({
          to: "EMB/BEIJING",
          label: ASIA,
          name: "unit.txt",
          source: bytesSource(v2),
        });
        await rejectsWith(uncleared.transport.document(unitDoc.id), "not_cleared");
        await rejectsWith(uncleared.transport.readBlob(unitDoc.document.versions[0]!.blob), "not_cleared");
        assert.ok(!(await uncleared.documents.list()).some((x) => x.id === unitDoc.id));
        await uncleared.sync();
        await assert.rejects(uncleared.documents.get(unitDoc.id), code("not_cleared"));

        // Resumable: the connection drops in the middle of an upload part and of a download; both finish intact.
        let dropUpload = true;
        const flakyUp: typeof fetch = async (input, init) => {
          if (dropUpload && init?.method === "PATCH") {
            dropUpload = false;
            // Half the part reaches the server, then the connection dies.
            const body = init.body as Uint8Array;
            await fetch(input, {
              ...init,
              body: body.subarray(0, Math.floor(body.length / 2)) as unknown as BodyInit,
            }).catch(() => undefined);
            throw new TypeError("fetch failed: socket hang up");
          }
          return fetch(input, init);
        };
        let cut = true;
        const flakyDown: typeof fetch = async (input, init) => {
          const r = await fetch(input, init);
          const isBlob = /\/v1\/blobs\/b-[a-z0-9]+$/.test(
            new URL(String(input instanceof Request ? input.url : input)).pathname,
          );
          // Cut the main (ranged) download of a large blob once, after 3 MiB.
          const ranged = (init?.headers as Record<string, string> | undefined)?.range !== undefined;
          if (!cut || !isBlob || !ranged || !r.body || Number(r.headers.get("content-length") ?? 0) < 4 * 1024 * 1024)
            return r;
          cut = false;
          let sent = 0;
          const reader = r.body.getReader();
          const body = new ReadableStream<Uint8Array>({
            async pull(ctl) {
              if (sent > 3 * 1024 * 1024) {
                await reader.cancel();
                ctl.error(new TypeError("terminated: connection reset"));
                return;
              }
              const x = await reader.read();
              if (x.done) ctl.close();
              else {
                sent += x.value.length;
                ctl.enqueue(x.value);
              }
            },
            cancel: (why) => reader.cancel(why),
          });
          return new Response(body, { status: r.status, headers: r.headers });
        };
        const flaky = await w.enroll("jnovak", "flaky", flakyUp);
        // A device enrolled after a share holds no key for it (MLS gives new members no past keys): enrol first.
        const reader2 = await w.enroll("pdvorak", "reader2", flakyDown);
        const big = pseudoRandom(9 * 1024 * 1024 + 3, 13);
        const put3 = await flaky.documents.put({
          to: "pdvorak",
          label: ASIA,
          name: "big.bin",
          source: bytesSource(big),
        });
        assert.equal(dropUpload, false, "the upload was interrupted once");
        await reader2.sync();
        const g = await reader2.documents.get(put3.id);
        assert.equal(sha(await collect(g.bytes, 64 * 1024 * 1024)), sha(big));
        assert.equal(cut, false, "the download was interrupted once");

        for (const f of filesUnder(w.server.db.dataDir)) {
          const bytes = readFileSync(f);
          assert.equal(bytes.indexOf(Buffer.from("DOCNAME-MARKER-84")), -1, `file name in ${f}`);
          assert.equal(bytes.indexOf(Buffer.from(v1.subarray(200_000, 200_064))), -1, `content in ${f}`);
        }
      } finally {
        await w.close();
      }
    });

    test("revoking a clearance cuts the user's devices off before it is acknowledged; only officers may", async () => {
      const { w, desk, beijing, officer } = await setup(kind);
      try {
        await desk.cables.send({
          action: ["EMB/BEIJING"],
          precedence: "PRIORITY",
          label: ASIA,
          subject: "before",
          body: "b",
        });
        assert.equal((await beijing.sync()).filter((i) => i.type === "cable").length, 1);
        const link = desk.conversationList().find((c) => c.kind === "link" && c.unit === "EMB/BEIJING")!;
        await rejectsWith(desk.setClearance("pdvorak", "CONFIDENTIAL"), "forbidden");
        const r = await officer.setClearance("pdvorak", "CONFIDENTIAL");
        assert.equal(r.clearance, "CONFIDENTIAL");
        const pending = r.pendingRemovals.find((p) => p.conversation === link.id);
        assert.ok(pending && pending.devices.includes(beijing.deviceId), "the link group is pending removal");
        // Already in effect when the answer came: no messages, no group info, not listed.
        await rejectsWith(beijing.transport.messages(link.id, 0), "not_cleared");
        assert.ok(!(await beijing.transport.conversations()).some((c) => c.id === link.id));
        // The next cable first commits the removal (a new epoch without the phone's keys), then carries its key.
        const after = await desk.cables.send({
          action: ["EMB/BEIJING"],
          precedence: "FLASH",
          label: ASIA,
          subject: "after",
          body: "a",
        });
        assert.ok(
          !desk.conversationMembers(link.id).some((m) => m.user === "pdvorak"),
          "pdvorak's device was removed from the link group (new epoch) before the FLASH cable's key went out",
        );
        const b = await beijing.sync();
        assert.equal(b.filter((i) => i.type === "cable").length, 0);
        await rejectsWith(beijing.transport.cable(after.id), "not_cleared");
      } finally {
        await w.close();
      }
    });

    test("canary documents: accesses are flagged in the audit log, invisible to users", async () => {
      const { w, desk, beijing, officer } = await setup(kind);
      try {
        const put = await desk.documents.put({
          to: "pdvorak",
          label: ASIA,
          name: "bait.pdf",
          source: bytesSource(randomBytes(5000)),
        });
        await rejectsWith(desk.documents.setCanary(put.id, true), "forbidden");
        await officer.documents.setCanary(put.id, true);
        await beijing.sync();
        await collect((await beijing.documents.get(put.id)).bytes);
        const meta = await beijing.transport.document(put.id);
        assert.ok(!JSON.stringify(meta).includes("canary"), "no canary field in user-facing metadata");
        const events = (await w.server.store.audit.query({ object: put.id, limit: 100 })).map(
          (e) =>
            JSON.parse(Buffer.from(e.data).toString("utf8")) as {
              canary: boolean;
              actor: string;
              action: string;
              bytes: number;
            },
        );
        const flagged = events.filter((e) => e.canary && e.actor === "pdvorak");
        assert.ok(
          flagged.some((e) => e.action === "document.read" && e.bytes > 0),
          "the blob read is flagged",
        );
      } finally {
        await w.close();
      }
    });
  });
}

describe("cable queue order", { timeout: 300_000 }, () => {
  test("a FLASH cable overtakes a queue of 1,000 ROUTINE cables", async () => {
    const { w, desk, tokyo } = await setup("sqlite");
    try {
      for (let i = 0; i < 1000; i++)
        await desk.cables.send({
          action: ["EMB/TOKYO"],
          precedence: "ROUTINE",
          label: "UNCLASSIFIED",
          subject: `routine ${i}`,
          body: "r",
        });
      const flash = await desk.cables.send({
        action: ["EMB/TOKYO"],
        precedence: "FLASH",
        label: "UNCLASSIFIED",
        subject: "FLASH",
        body: "now",
      });
      const queue = await tokyo.transport.cableQueue(10);
      assert.equal(queue[0]?.id, flash.id, "the server's queue serves FLASH first");
      const items = (await tokyo.sync()).filter((i) => i.type === "cable");
      assert.equal(items.length, 1001);
      assert.equal(items[0]!.type === "cable" && items[0]!.reference, flash.reference);
      assert.deepEqual(
        items.slice(1, 4).map((i) => i.text),
        ["routine 0", "routine 1", "routine 2"],
      );
    } finally {
      await w.close();
    }
  });
});
