/**
 * Resuming an interrupted document upload through the client SDK (`documents.resumeUpload`) against a real server on
 * 127.0.0.1, SQLite and PostgreSQL: the upload is cut after one part; a different file of the same size is refused
 * before a byte is sent (its first bytes do not hash to what was kept before the parts went out); the upload record
 * in another account's or another device's hands gets 403 (the server's status and PATCH belong to the uploading
 * device); a server claiming more bytes than were ever sent is refused; the same file then continues from the
 * server's offset — only the remainder is sent — and the addressee decrypts it byte-identical.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { isValiseError } from "@valise/core";
import { collect, type PendingUpload, type PlainSource } from "@valise/client";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { world } from "./helpers.js";

const LABEL = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: LABEL },
];
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A fetch that counts the upload bytes it carries, can cut the upload after N parts and can rewrite the status. */
function wire() {
  const s = {
    patches: 0,
    patchBytes: 0,
    cutAfter: Infinity,
    /** Replaces `received` in blob status answers (a lying server). */
    claim: undefined as number | undefined,
  };
  const f: typeof fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (init?.method === "PATCH" && /\/v1\/blobs\//.test(url)) {
      if (s.patches >= s.cutAfter)
        return new Response(JSON.stringify({ code: "bad_request", message: "test: the upload is cut here" }), {
          status: 400,
          headers: { "content-type": "application/json" },
        });
      s.patches++;
      s.patchBytes += (init.body as Uint8Array).byteLength;
    }
    const r = await fetch(input, init);
    if (s.claim !== undefined && /\/status$/.test(url) && r.ok) {
      const j = (await r.json()) as Record<string, unknown>;
      return new Response(JSON.stringify({ ...j, received: s.claim }), {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    }
    return r;
  };
  return { s, f };
}

/** A file-like source: 256 KiB pieces (as a file is read), not one piece of everything. */
function fileLike(bytes: Uint8Array): PlainSource {
  return {
    size: bytes.length,
    async *open(offset: number) {
      for (let i = offset; i < bytes.length; i += 256 * 1024)
        yield bytes.subarray(i, Math.min(bytes.length, i + 256 * 1024));
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, resume?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isValiseError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (resume !== undefined) assert.equal(e.details?.resume, resume, e.message);
    return true;
  });
}

for (const kind of DATABASE_KINDS) {
  describe(`resuming an interrupted upload on ${kind}`, () => {
    test("continues from the server's offset with only the remainder sent; another file, another account or device, and a lying server are refused", async () => {
      const w = await world(kind, people);
      try {
        const net = wire();
        const desk = await w.enroll("jnovak", "laptop", net.f);
        const phone = await w.enroll("jnovak", "phone");
        const beijing = await w.enroll("pdvorak");
        const data = new Uint8Array(randomBytes(32 * 1024 * 1024 + 12345));
        const sourceId = "test:/budget-annex.bin";

        // Cut after one 8 MiB part (the checkpoint kept before the refused second part covers 16 MiB).
        net.s.cutAfter = 1;
        await rejectsWith(
          desk.documents.put({
            to: "pdvorak",
            label: LABEL,
            name: "budget-annex.bin",
            source: fileLike(data),
            sourceId,
          }),
          "bad_request",
        );
        const [u] = desk.documents.pendingUploads();
        assert.ok(u, "the interrupted upload is kept");
        assert.ok(
          u.sent && u.sent.plain >= 16 * 1024 * 1024 && u.sent.plain < data.length,
          `kept checkpoint ${JSON.stringify(u.sent)}`,
        );
        const held = (await w.server.store.blobBytes.size(u.blob)) ?? 0;
        assert.ok(held >= 8 * 1024 * 1024 && held < data.length, `server holds ${held}`);
        const sentBefore = net.s.patchBytes;
        net.s.cutAfter = Infinity;

        // Another file of the same size (one byte differs inside the part already sent): refused, nothing sent.
        const other = data.slice();
        other[5 * 1024 * 1024] = (data[5 * 1024 * 1024] ?? 0) ^ 1;
        await rejectsWith(desk.documents.resumeUpload(u, fileLike(other)), "conflict", "different_file");
        assert.equal(net.s.patchBytes, sentBefore, "bytes were sent for a different file");
        assert.equal(desk.documents.pendingUploads().length, 1, "the refusal dropped the interrupted upload");
        // A record without a checkpoint (kept by an older version) cannot be checked: refused too.
        const { sent: _sent, ...old } = u;
        await rejectsWith(desk.documents.resumeUpload(old, fileLike(data)), "conflict", "unverifiable");

        // The record in the hands of another account, or of another device of the same user: the server says 403.
        const stolen: PendingUpload = { ...u };
        await rejectsWith(beijing.documents.resumeUpload(stolen, fileLike(data)), "forbidden");
        await rejectsWith(phone.documents.resumeUpload(stolen, fileLike(data)), "forbidden");
        assert.equal(await w.server.store.blobBytes.size(u.blob), held, "someone else wrote to the upload");

        // A server claiming bytes this device never sent is refused (continuing would skip chunks).
        net.s.claim = data.length - 1;
        await rejectsWith(desk.documents.resumeUpload(u, fileLike(data)), "protocol_error");
        net.s.claim = undefined;
        assert.equal(net.s.patchBytes, sentBefore);

        // The same file continues where the server's copy ends: only the rest goes on the wire.
        const total = 51 + data.length + Math.ceil(data.length / (1024 * 1024)) * 16;
        const r = await desk.documents.resumeUpload(u.blob, fileLike(data));
        const resent = net.s.patchBytes - sentBefore;
        assert.equal(resent, total - held, `resumed with ${resent} bytes; ${total - held} were missing`);
        assert.deepEqual(desk.documents.pendingUploads(), []);
        console.log(`# ${kind}: cut at ${held} of ${total} ciphertext bytes; the resume sent ${resent}`);

        await beijing.sync();
        const got = await beijing.documents.get(r.id);
        assert.equal(got.name, "budget-annex.bin");
        assert.equal(sha(await collect(got.bytes, 64 * 1024 * 1024)), sha(data), "byte-identical after the resume");
      } finally {
        await w.close();
      }
    });
  });
}
