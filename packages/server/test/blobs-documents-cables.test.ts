/**
 * Blobs, documents and cables over HTTP (docs/cables-documents-api.md), on every database: resumable upload across
 * a dropped connection, offsets, ranged download, need-to-know (403 not_cleared for an entitled user without the
 * compartment, 403 forbidden for a user who is not entitled, 404 for unknown ids, listings leave both out), canaries
 * visible only in the audit log, cable references sequential per originator and year under concurrency, idempotent
 * release, no update route, FLASH first in the queue, per-device and per-unit receipts.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { statSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseAuditEvent, randomId, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, login, uploadBlob, type BlobStatus, type Session } from "./helpers/content.js";

interface Doc {
  id: string;
  owner: string;
  label: string;
  to: { kind: string; name: string };
  versions: { version: number; blob: string; size: number; createdBy: string }[];
}
interface Cable {
  id: string;
  reference: string;
  originator: string;
  sender: string;
  precedence: string;
  label: string;
  action: string[];
  info: string[];
  blob: string;
  size: number;
  corrects: string | null;
  receipts: {
    unit: string;
    role: string;
    deliveredAt: number | null;
    deliveredBy: string | null;
    readAt: number | null;
    readBy: string | null;
  }[];
}

const YEAR = new Date().getUTCFullYear();

for (const kind of DATABASE_KINDS) {
  describe(`blobs, documents and cables on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let alice: Session; // HQ/ASIA-1, SECRET/ASIA
    let bob: Session; // HQ/ASIA-1, SECRET (no ASIA): entitled by unit, not cleared
    let carol: Session; // EMB/BEIJING, SECRET/ASIA
    let carol2: Session; // carol's second device
    let dave: Session; // HQ/EU, SECRET/ASIA: not entitled
    let olga: Session; // security officer

    before(async () => {
      srv = await startTestServer(kind);
      url = srv.url;
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUnit("EMB/BEIJING", "SECRET/ASIA");
      await d.addUnit("HQ/EU", "SECRET");
      await d.addUnit("HQ/SEC", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET", role: "user" });
      await d.addUser({ handle: "carol", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "dave", units: ["HQ/EU"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      alice = await login(url, srv.store, "alice", "d-alice00001");
      bob = await login(url, srv.store, "bob", "d-bob0000001");
      carol = await login(url, srv.store, "carol", "d-carol00001");
      carol2 = await login(url, srv.store, "carol", "d-carol00002");
      dave = await login(url, srv.store, "dave", "d-dave000001");
      olga = await login(url, srv.store, "olga", "d-olga000001");
    });
    after(async () => {
      await srv.close();
    });

    async function events(): Promise<AuditEvent[]> {
      const raw = await srv.store.audit.entries(0, await srv.store.audit.size());
      return raw.map((x) => {
        const p = parseAuditEvent(x);
        assert.ok(p.ok);
        return p.event;
      });
    }

    test("an upload in progress is resumable only by the device that began it: status 403 for another account and 409 for the same user's other device, PATCH 403 for both", async () => {
      const bytes = new Uint8Array(randomBytes(64 * 1024));
      const c = await call<BlobStatus>(url, carol, "POST", "/v1/blobs", { size: bytes.length });
      assert.equal(c.status, 201, c.text);
      const id = c.json.id;
      const half = 20 * 1024;
      const first = await call<BlobStatus>(url, carol, "PATCH", `/v1/blobs/${id}`, bytes.subarray(0, half), {
        "upload-offset": "0",
      });
      assert.equal(first.status, 200, first.text);
      for (const who of [dave, carol2]) {
        // Another account: 403. The same user's other device (a history transfer's receiver polls it): 409, "not
        // complete yet" and nothing more.
        const st = await call(url, who, "GET", `/v1/blobs/${id}/status`);
        assert.equal(st.status, who === dave ? 403 : 409, `${who.device} status: ${st.text}`);
        assert.equal(st.json.code, who === dave ? "forbidden" : "conflict");
        assert.doesNotMatch(st.text, new RegExp(`"received"`), "the refusal tells how far the upload got");
        const w = await call(url, who, "PATCH", `/v1/blobs/${id}`, bytes.subarray(half), {
          "upload-offset": String(half),
        });
        assert.equal(w.status, 403, `${who.device} PATCH: ${w.text}`);
        assert.equal(w.json.code, "forbidden");
      }
      assert.equal((await call(url, dave, "GET", `/v1/blobs/b-unknown0000/status`)).status, 404);
      // Nothing was written by them; the uploading device sees its own offset and finishes.
      const st = await call<BlobStatus>(url, carol, "GET", `/v1/blobs/${id}/status`);
      assert.deepEqual(st.json, { id, size: bytes.length, received: half, complete: false });
      const rest = await call<BlobStatus>(url, carol, "PATCH", `/v1/blobs/${id}`, bytes.subarray(half), {
        "upload-offset": String(half),
      });
      assert.equal(rest.status, 200, rest.text);
      assert.equal(rest.json.complete, true);
      // Complete: the owner's other device may read its status (history transfer between one's devices).
      assert.equal((await call(url, carol2, "GET", `/v1/blobs/${id}/status`)).status, 200);
    });

    test("a small blob whole in one request: complete at once, audited with its bytes; bad lengths, bodies and callers refused", async () => {
      const bytes = new Uint8Array(randomBytes(3000));
      const w = await call<BlobStatus>(url, alice, "POST", "/v1/blobs/whole", bytes);
      assert.equal(w.status, 201, w.text);
      assert.deepEqual({ ...w.json, id: "" }, { id: "", size: 3000, received: 3000, complete: true });
      const back = await fetch(`${url}/v1/blobs/${w.json.id}`, { headers: { authorization: `Bearer ${alice.token}` } });
      assert.equal(back.status, 200);
      assert.deepEqual(new Uint8Array(await back.arrayBuffer()), bytes);
      // Complete: no part may be added.
      const more = await call(url, alice, "PATCH", `/v1/blobs/${w.json.id}`, bytes, { "upload-offset": "3000" });
      assert.equal(more.status, 409, more.text);
      // Unattached: only its owner reads it.
      const other = await fetch(`${url}/v1/blobs/${w.json.id}`, { headers: { authorization: `Bearer ${dave.token}` } });
      assert.equal(other.status, 403);
      const ev = (await events()).filter((e) => e.object === w.json.id && e.action === "document.write");
      assert.deepEqual(
        ev.map((e) => [e.actor, e.bytes, e.outcome]),
        [["alice", 3000, "ok"]],
      );

      assert.equal((await call(url, null, "POST", "/v1/blobs/whole", bytes)).status, 401);
      assert.equal((await call(url, alice, "POST", "/v1/blobs/whole", new Uint8Array(0))).status, 400);
      const json = await call(url, alice, "POST", "/v1/blobs/whole", { size: 10 });
      assert.ok(json.status === 400 || json.status === 415, json.text);
      const big = await call(url, alice, "POST", "/v1/blobs/whole", new Uint8Array(1024 * 1024 + 1));
      assert.equal(big.status, 413, big.text);
      // A body longer or shorter than its Content-Length never becomes a complete blob.
      for (const [declared, sent] of [
        [100, 50],
        [10, 100],
      ] as const) {
        const status = await new Promise<number>((resolve) => {
          const r = request(
            `${url}/v1/blobs/whole`,
            {
              method: "POST",
              headers: {
                authorization: `Bearer ${alice.token}`,
                "content-type": "application/offset+octet-stream",
                "content-length": String(declared),
              },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          r.on("error", () => resolve(0));
          r.end(Buffer.alloc(sent, 7));
          if (sent < declared) setTimeout(() => r.destroy(), 300);
        });
        assert.notEqual(status, 201, `declared ${declared}, sent ${sent}`);
      }
      const complete = await srv.store.handle.db
        .selectFrom("blobs")
        .select(["size", "complete"])
        .where("owner", "=", "alice")
        .where("complete", "=", 1)
        .execute();
      assert.deepEqual(
        complete.filter((b) => Number(b.size) === 100 || Number(b.size) === 10),
        [],
        "a short or long body made a complete blob",
      );
    });

    test("resumable upload: a dropped PATCH keeps its bytes, status tells, wrong offset is 409, resume completes", async () => {
      const bytes = new Uint8Array(randomBytes(1024 * 1024));
      const c = await call<BlobStatus>(url, alice, "POST", "/v1/blobs", { size: bytes.length });
      assert.equal(c.status, 201);
      assert.deepEqual({ ...c.json, id: "" }, { id: "", size: bytes.length, received: 0, complete: false });
      const id = c.json.id;
      assert.match(id, /^b-[a-z0-9]+$/);

      // A raw request announcing the whole blob, cut after 300 KiB once those are on the server's disk.
      const first = 300 * 1024;
      const req = request(`${url}/v1/blobs/${id}`, {
        method: "PATCH",
        headers: {
          authorization: `Bearer ${alice.token}`,
          "content-type": "application/offset+octet-stream",
          "content-length": String(bytes.length),
          "upload-offset": "0",
        },
      });
      const failed = new Promise<void>((resolve) => req.on("error", () => resolve()));
      req.write(bytes.subarray(0, first));
      for (let i = 0; i < 500 && (await srv.store.blobBytes.size(id)) !== first; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(await srv.store.blobBytes.size(id), first, "the first part reached the server's disk");
      req.destroy();
      await failed;

      const st = await call<BlobStatus>(url, alice, "GET", `/v1/blobs/${id}/status`);
      assert.equal(st.status, 200, st.text);
      assert.deepEqual(st.json, { id, size: bytes.length, received: first, complete: false });
      // The cut upload is audited with the bytes it stored (its answer, hence its event, comes after its lock).
      const writes = async () => (await events()).filter((e) => e.object === id && e.action === "document.write");
      let cut = await writes();
      for (let i = 0; i < 200 && cut.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 10));
        cut = await writes();
      }
      assert.deepEqual(
        cut.map((e) => [e.actor, e.bytes, e.outcome]),
        [
          ["alice", 0, "ok"],
          ["alice", first, "ok"],
        ],
      );

      // Not yet complete: not readable; others may neither see nor write it.
      assert.equal((await call(url, alice, "GET", `/v1/blobs/${id}`)).status, 409);
      const peek = await call(url, dave, "GET", `/v1/blobs/${id}/status`);
      assert.equal(peek.status, 403);
      assert.equal(peek.json.code, "forbidden");
      const steal = await call(url, dave, "PATCH", `/v1/blobs/${id}`, bytes.subarray(first), {
        "upload-offset": String(first),
      });
      assert.equal(steal.status, 403);
      assert.equal(steal.json.code, "forbidden");

      // Wrong offsets (behind and ahead) are refused with what the server holds.
      for (const off of [0, first - 1, first + 1]) {
        const w = await call(url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(off, off + 10), {
          "upload-offset": String(off),
        });
        assert.equal(w.status, 409, w.text);
        assert.equal(w.json.code, "offset_mismatch");
        assert.equal(w.json.received, first);
      }
      const noOffset = await call(url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(first));
      assert.equal(noOffset.status, 400);
      const tooMuch = await call(url, alice, "PATCH", `/v1/blobs/${id}`, new Uint8Array(bytes.length), {
        "upload-offset": String(first),
      });
      assert.equal(tooMuch.status, 413);

      const mid = first + 200 * 1024;
      const r1 = await call<BlobStatus>(url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(first, mid), {
        "upload-offset": String(first),
      });
      assert.deepEqual(r1.json, { id, size: bytes.length, received: mid, complete: false });
      const r2 = await call<BlobStatus>(url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(mid), {
        "upload-offset": String(mid),
      });
      assert.deepEqual(r2.json, { id, size: bytes.length, received: bytes.length, complete: true });
      const again = await call(url, alice, "PATCH", `/v1/blobs/${id}`, new Uint8Array(1), {
        "upload-offset": String(bytes.length),
      });
      assert.equal(again.status, 409);
      assert.equal(again.json.code, "conflict");

      // Download: whole, and from an offset (206).
      const all = await fetch(`${url}/v1/blobs/${id}`, { headers: { authorization: `Bearer ${alice.token}` } });
      assert.equal(all.status, 200);
      assert.equal(all.headers.get("content-length"), String(bytes.length));
      assert.deepEqual(new Uint8Array(await all.arrayBuffer()), bytes);
      const part = await fetch(`${url}/v1/blobs/${id}`, {
        headers: { authorization: `Bearer ${alice.token}`, range: "bytes=1000-" },
      });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get("content-range"), `bytes 1000-${bytes.length - 1}/${bytes.length}`);
      assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(1000));
      const beyond = await fetch(`${url}/v1/blobs/${id}`, {
        headers: { authorization: `Bearer ${alice.token}`, range: `bytes=${bytes.length}-` },
      });
      assert.equal(beyond.status, 416);
      await beyond.arrayBuffer();
      // Someone else's unattached blob.
      const other = await call(url, dave, "GET", `/v1/blobs/${id}`);
      assert.equal(other.status, 403);
      assert.equal(other.json.code, "forbidden");
      assert.equal((await call(url, dave, "GET", `/v1/blobs/b-unknown0000`)).status, 404);
      const bad = await call(url, alice, "POST", "/v1/blobs", { size: 0 });
      assert.equal(bad.status, 400);
      // The blob file is the owner's only (0600) under DATA/blobs/.
      assert.equal(statSync(join(srv.db.dataDir, "blobs", id.slice(2, 4), id)).mode & 0o777, 0o600);
    });

    test("documents: need-to-know on metadata, blob bytes and listings; versions; no canary in answers", async () => {
      const v1 = new Uint8Array(randomBytes(5000));
      const blob = await uploadBlob(url, alice, v1);
      const id = randomId("f");
      const body = { id, label: "SECRET/ASIA", to: { kind: "unit", name: "HQ/ASIA-1" }, blob };

      // Someone else's blob, and an addressee not cleared for the label.
      const daveBlob = await uploadBlob(url, dave, new Uint8Array(10));
      const stolen = await call(url, alice, "POST", "/v1/documents", { ...body, blob: daveBlob });
      assert.equal(stolen.status, 403);
      assert.equal(stolen.json.code, "forbidden");
      const toBob = await call(url, alice, "POST", "/v1/documents", { ...body, to: { kind: "user", name: "bob" } });
      assert.equal(toBob.status, 403);
      assert.equal(toBob.json.code, "not_cleared");
      const toEu = await call(url, alice, "POST", "/v1/documents", { ...body, to: { kind: "unit", name: "HQ/EU" } });
      assert.equal(toEu.status, 403);
      assert.equal(toEu.json.code, "not_cleared");
      const byBob = await call(url, bob, "POST", "/v1/documents", { ...body, id: randomId("f"), blob: daveBlob });
      assert.equal(byBob.status, 403);
      assert.equal(byBob.json.code, "not_cleared");

      const made = await call<Doc>(url, alice, "POST", "/v1/documents", body);
      assert.equal(made.status, 201, made.text);
      assert.equal(made.json.owner, "alice");
      assert.deepEqual(
        made.json.versions.map((x) => [x.version, x.blob, x.size, x.createdBy]),
        [[1, blob, 5000, "alice"]],
      );
      assert.ok(!("canary" in made.json));
      const dup = await call(url, alice, "POST", "/v1/documents", body);
      assert.equal(dup.status, 409);
      const reuse = await call(url, alice, "POST", "/v1/documents", { ...body, id: randomId("f") });
      assert.equal(reuse.status, 409, "a blob is attached once");

      // bob: same unit (entitled) but no ASIA compartment → not_cleared; dave: other unit → forbidden.
      for (const path of [`/v1/documents/${id}`, `/v1/blobs/${blob}`, `/v1/blobs/${blob}/status`]) {
        const b = await call(url, bob, "GET", path);
        assert.equal(b.status, 403, path);
        assert.equal(b.json.code, "not_cleared", path);
        const d = await call(url, dave, "GET", path);
        assert.equal(d.status, 403, path);
        assert.equal(d.json.code, "forbidden", path);
      }
      const bobVersion = await call(url, bob, "POST", `/v1/documents/${id}/versions`, {
        blob: await uploadBlob(url, bob, new Uint8Array(3)),
      });
      assert.equal(bobVersion.json.code, "not_cleared");
      assert.equal((await call(url, alice, "GET", `/v1/documents/f-unknown00000`)).status, 404);
      for (const who of [bob, dave, carol]) {
        const l = await call<{ documents: Doc[] }>(url, who, "GET", "/v1/documents");
        assert.equal(l.status, 200);
        assert.ok(!l.json.documents.some((x) => x.id === id), `${who.handle} does not list it`);
      }
      const mine = await call<{ documents: Doc[] }>(url, alice, "GET", "/v1/documents");
      assert.ok(mine.json.documents.some((x) => x.id === id));

      // A second version from alice; the old one is kept.
      const v2 = new Uint8Array(randomBytes(7000));
      const blob2 = await uploadBlob(url, alice, v2);
      const nv = await call<Doc>(url, alice, "POST", `/v1/documents/${id}/versions`, { blob: blob2 });
      assert.equal(nv.status, 201, nv.text);
      assert.deepEqual(
        nv.json.versions.map((x) => [x.version, x.blob, x.size]),
        [
          [1, blob, 5000],
          [2, blob2, 7000],
        ],
      );
      const got = await fetch(`${url}/v1/blobs/${blob}`, { headers: { authorization: `Bearer ${alice.token}` } });
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), v1);

      // Audited: denials as denied, with the document as object.
      const ev = await events();
      assert.ok(
        ev.some((e) => e.actor === "bob" && e.object === id && e.action === "document.read" && e.outcome === "denied"),
      );
      assert.ok(
        ev.some(
          (e) =>
            e.actor === "alice" &&
            e.object === id &&
            e.action === "document.read" &&
            e.bytes === 5000 &&
            e.label === "SECRET/ASIA" &&
            e.outcome === "ok",
        ),
        "blob bytes are audited as a read of the document",
      );
      assert.ok(ev.some((e) => e.action === "document.list" && e.actor === "carol" && e.canary === false));
    });

    test("canaries: officers only; never in user answers; every access audited with canary: true", async () => {
      const blob = await uploadBlob(url, alice, new Uint8Array(randomBytes(100)));
      const id = randomId("f");
      const made = await call(url, alice, "POST", "/v1/documents", {
        id,
        label: "CONFIDENTIAL",
        to: { kind: "user", name: "carol" },
        blob,
      });
      assert.equal(made.status, 201);
      for (const who of [alice, bob, carol]) {
        const r = await call(url, who, "PUT", `/v1/documents/${id}/canary`, { canary: true });
        assert.equal(r.status, 403);
        assert.equal(r.json.code, "forbidden");
        assert.equal((await call(url, who, "GET", "/v1/officer/canaries")).status, 403);
      }
      const set = await call(url, olga, "PUT", `/v1/documents/${id}/canary`, { canary: true });
      assert.equal(set.status, 200, set.text);
      assert.deepEqual(set.json, { id, canary: true });
      const list = await call<{ documents: { id: string }[] }>(url, olga, "GET", "/v1/officer/canaries");
      assert.deepEqual(
        list.json.documents.map((d) => d.id),
        [id],
      );
      assert.equal((await call(url, olga, "PUT", `/v1/documents/f-unknown00000/canary`, { canary: true })).status, 404);

      const before = await srv.store.audit.size();
      const meta = await call(url, carol, "GET", `/v1/documents/${id}`);
      assert.equal(meta.status, 200);
      assert.ok(!meta.text.includes("canary"));
      const lst = await call(url, carol, "GET", "/v1/documents");
      assert.ok(lst.text.includes(id) && !lst.text.includes("canary"));
      const bytes = await fetch(`${url}/v1/blobs/${blob}`, { headers: { authorization: `Bearer ${carol.token}` } });
      assert.equal(bytes.status, 200);
      await bytes.arrayBuffer();
      const denied = await call(url, dave, "GET", `/v1/documents/${id}`);
      assert.equal(denied.status, 403);
      assert.ok(!denied.text.includes("canary"));
      const ver = await call(url, carol, "POST", `/v1/documents/${id}/versions`, {
        blob: await uploadBlob(url, carol, new Uint8Array(5)),
      });
      assert.equal(ver.status, 201, ver.text);

      const ev = (await events()).slice(before);
      const onIt = ev.filter((e) => e.object === id);
      assert.deepEqual(
        onIt.map((e) => [e.actor, e.action, e.outcome, e.canary]),
        [
          ["carol", "document.read", "ok", true],
          ["carol", "document.read", "ok", true],
          ["dave", "document.read", "denied", true],
          ["carol", "document.write", "ok", true],
        ],
      );
      assert.equal(onIt[1]!.bytes, 100);
      const listing = ev.find((e) => e.action === "document.list" && e.actor === "carol");
      assert.equal(listing?.canary, false, "a listing is not an access to the canary itself");
    });

    test("cables: checks, reference, idempotent re-POST, need-to-know, no update route, corrections", async () => {
      const blob = await uploadBlob(url, alice, new Uint8Array(randomBytes(2000)));
      const id = randomId("k");
      const body = {
        id,
        originator: "HQ/ASIA-1",
        action: ["EMB/BEIJING"],
        info: [] as string[],
        precedence: "IMMEDIATE",
        label: "SECRET/ASIA",
        blob,
      };
      const refused: [Session, Record<string, unknown>, number, string][] = [
        [dave, { originator: "HQ/EU" }, 403, "not_cleared"], // HQ/EU may not carry ASIA
        [carol, {}, 403, "forbidden"], // not a member of the originator
        [bob, {}, 403, "not_cleared"],
        [alice, { info: ["HQ/EU"] }, 403, "not_cleared"],
        [alice, { info: ["EMB/BEIJING"] }, 400, "bad_request"],
        [alice, { action: ["EMB/BEIJING", "EMB/BEIJING"] }, 400, "bad_request"],
        [alice, { action: [] }, 400, "bad_request"],
        [alice, { action: ["EMB/NOWHERE"] }, 404, "not_found"],
        [alice, { precedence: "URGENT" }, 400, "bad_request"],
        [alice, { corrects: `HQ/ASIA-1 ${YEAR}/999999` }, 404, "not_found"],
        [alice, { blob: await uploadBlob(url, dave, new Uint8Array(1)) }, 403, "forbidden"],
      ];
      for (const [who, over, status, code] of refused) {
        const r = await call(url, who, "POST", "/v1/cables", { ...body, ...over });
        assert.equal(r.status, status, `${JSON.stringify(over)}: ${r.text}`);
        assert.equal(r.json.code, code, JSON.stringify(over));
      }

      const r = await call<Cable>(url, alice, "POST", "/v1/cables", body);
      assert.equal(r.status, 201, r.text);
      const c = r.json;
      assert.match(c.reference, new RegExp(`^HQ/ASIA-1 ${YEAR}/\\d{6}$`));
      assert.equal(c.sender, "alice");
      assert.equal(c.size, 2000);
      assert.equal(c.corrects, null);
      assert.deepEqual(
        c.receipts.map((x) => [x.unit, x.role, x.deliveredAt, x.readAt]),
        [["EMB/BEIJING", "action", null, null]],
      );
      const again = await call<Cable>(url, alice, "POST", "/v1/cables", body);
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, c);
      const changed = await call(url, alice, "POST", "/v1/cables", { ...body, precedence: "FLASH" });
      assert.equal(changed.status, 409);
      for (const method of ["PUT", "PATCH", "DELETE"]) {
        const u = await call(url, alice, method, `/v1/cables/${id}`, { precedence: "FLASH" });
        assert.equal(u.status, 404, `${method} has no route`);
      }

      const byRef = `/v1/cables/by-reference?reference=${encodeURIComponent(c.reference)}`;
      for (const path of [`/v1/cables/${id}`, byRef, `/v1/blobs/${blob}`]) {
        const b = await call(url, bob, "GET", path);
        assert.equal(b.status, 403, path);
        assert.equal(b.json.code, "not_cleared", path);
        const d = await call(url, dave, "GET", path);
        assert.equal(d.status, 403, path);
        assert.equal(d.json.code, "forbidden", path);
        assert.equal((await call(url, carol, "GET", path)).status, 200, path);
      }
      assert.equal((await call(url, carol, "GET", `/v1/cables/k-unknown00000`)).status, 404);
      // carol's device acknowledges: EMB/BEIJING's receipt is set; her other device still has it queued.
      const rec = await call<Cable>(url, carol, "POST", `/v1/cables/${id}/receipts`, { state: "read" });
      assert.equal(rec.status, 200, rec.text);
      assert.equal(rec.json.receipts[0]!.readBy, "carol");
      assert.equal(rec.json.receipts[0]!.deliveredBy, "carol", "read implies delivered");
      const q1 = await call<{ cables: Cable[] }>(url, carol, "GET", "/v1/cables/queue");
      assert.ok(!q1.json.cables.some((x) => x.id === id));
      const q2 = await call<{ cables: Cable[] }>(url, carol2, "GET", "/v1/cables/queue");
      assert.ok(q2.json.cables.some((x) => x.id === id));
      const bobReceipt = await call(url, bob, "POST", `/v1/cables/${id}/receipts`, { state: "read" });
      assert.equal(bobReceipt.json.code, "not_cleared");
      for (const who of [bob, dave]) {
        const l = await call<{ cables: Cable[] }>(url, who, "GET", "/v1/cables");
        assert.ok(!l.json.cables.some((x) => x.id === id), who.handle);
        const q = await call<{ cables: Cable[] }>(url, who, "GET", "/v1/cables/queue");
        assert.ok(!q.json.cables.some((x) => x.id === id), who.handle);
      }
      const cl = await call<{ cables: Cable[] }>(url, carol, "GET", "/v1/cables?unit=EMB/BEIJING&precedence=IMMEDIATE");
      assert.ok(cl.json.cables.some((x) => x.id === id));
      const none = await call<{ cables: Cable[] }>(url, carol, "GET", "/v1/cables?precedence=FLASH");
      assert.ok(!none.json.cables.some((x) => x.id === id));

      // A correction names the cable it corrects (which the sender must be entitled to).
      const fix = await call<Cable>(url, alice, "POST", "/v1/cables", {
        ...body,
        id: randomId("k"),
        blob: await uploadBlob(url, alice, new Uint8Array(10)),
        corrects: c.reference,
      });
      assert.equal(fix.status, 201, fix.text);
      assert.equal(fix.json.corrects, c.reference);
      const daveFix = await call(url, dave, "POST", "/v1/cables", {
        ...body,
        originator: "HQ/EU",
        label: "SECRET",
        id: randomId("k"),
        blob: await uploadBlob(url, dave, new Uint8Array(10)),
        corrects: c.reference,
      });
      assert.equal(daveFix.status, 404, "no correcting a cable one is not entitled to");

      const ev = await events();
      assert.ok(ev.some((e) => e.action === "cable.send" && e.object === id && e.bytes === 2000 && e.outcome === "ok"));
      assert.ok(
        ev.some((e) => e.action === "cable.read" && e.object === id && e.actor === "bob" && e.outcome === "denied"),
      );
      assert.ok(ev.some((e) => e.action === "cable.list" && e.actor === "dave" && e.outcome === "ok"));
    });

    test("cable references: 50 concurrent releases get serials 1..50 of their originator and year, no gaps", async () => {
      await srv.store.directory.addUnit("EMB/TOKYO", "SECRET/ASIA");
      await srv.store.directory.addUser({
        handle: "taro",
        units: ["EMB/TOKYO"],
        clearance: "SECRET/ASIA",
        role: "user",
      });
      const taro = await login(url, srv.store, "taro", "d-taro000001");
      const blobs = await Promise.all(Array.from({ length: 50 }, (_, i) => uploadBlob(url, taro, new Uint8Array([i]))));
      const released = await Promise.all(
        blobs.map((blob) =>
          call<Cable>(url, taro, "POST", "/v1/cables", {
            id: randomId("k"),
            originator: "EMB/TOKYO",
            action: ["HQ/ASIA-1"],
            info: [],
            precedence: "ROUTINE",
            label: "CONFIDENTIAL",
            blob,
          }),
        ),
      );
      for (const r of released) assert.equal(r.status, 201, r.text);
      const refs = released.map((r) => r.json.reference).sort();
      assert.deepEqual(
        refs,
        Array.from({ length: 50 }, (_, i) => `EMB/TOKYO ${YEAR}/${String(i + 1).padStart(6, "0")}`),
      );
    });

    test("queue: FLASH after 1,000 ROUTINE comes first; receipts leave the device's queue and set the unit's", async () => {
      await srv.store.directory.addUnit("EMB/SEOUL", "SECRET");
      await srv.store.directory.addUnit("EMB/HANOI", "SECRET");
      await srv.store.directory.addUser({ handle: "kim", units: ["EMB/SEOUL"], clearance: "SECRET", role: "user" });
      await srv.store.directory.addUser({ handle: "lan", units: ["EMB/HANOI"], clearance: "SECRET", role: "user" });
      const kim = await login(url, srv.store, "kim", "d-kim0000001");
      const kim2 = await login(url, srv.store, "kim", "d-kim0000002");
      const lan = await login(url, srv.store, "lan", "d-lan0000001");
      // 1,000 ROUTINE cables from EMB/SEOUL to EMB/HANOI, released through the store (their blobs written directly).
      const db = srv.store.handle.db;
      const t0 = Date.now() - 60_000;
      const ids = Array.from({ length: 1000 }, () => randomId("b"));
      for (let i = 0; i < ids.length; i += 200)
        await db
          .insertInto("blobs")
          .values(
            ids.slice(i, i + 200).map((id) => ({
              id,
              owner: "kim",
              owner_device: kim.device,
              size: 1,
              received: 1,
              complete: 1,
              object_kind: null,
              object_id: null,
              created_at: t0,
              completed_at: t0,
            })),
          )
          .execute();
      const routine: string[] = [];
      for (const blob of ids) {
        const id = randomId("k");
        routine.push(id);
        await srv.store.cables.release({
          id,
          originator: "EMB/SEOUL",
          action: ["EMB/HANOI"],
          info: [],
          precedence: "ROUTINE",
          precedenceRank: 0,
          label: "RESTRICTED",
          blob,
          corrects: null,
          sender: "kim",
          senderDevice: kim.device,
          requestHash: id,
        });
      }
      const flash = await call<Cable>(url, kim, "POST", "/v1/cables", {
        id: randomId("k"),
        originator: "EMB/SEOUL",
        action: ["EMB/HANOI"],
        info: [],
        precedence: "FLASH",
        label: "RESTRICTED",
        blob: await uploadBlob(url, kim, new Uint8Array(1)),
      });
      assert.equal(flash.status, 201, flash.text);
      const flashId = flash.json.id;

      const q = await call<{ cables: Cable[] }>(url, lan, "GET", "/v1/cables/queue?limit=3");
      assert.deepEqual(
        q.json.cables.map((c) => c.id),
        [flashId, routine[0], routine[1]],
      );
      const all = await call<{ cables: Cable[] }>(url, lan, "GET", "/v1/cables?limit=2&offset=1000&unit=EMB/HANOI");
      assert.deepEqual(
        all.json.cables.map((c) => c.id),
        [routine[999]],
      );

      // lan's device acknowledges the FLASH: it leaves lan's queue only, and EMB/HANOI's receipt is set.
      const del = await call<Cable>(url, lan, "POST", `/v1/cables/${flashId}/receipts`, { state: "delivered" });
      assert.equal(del.status, 200, del.text);
      const rc = del.json.receipts[0]!;
      assert.equal(rc.unit, "EMB/HANOI");
      assert.equal(rc.deliveredBy, "lan");
      assert.ok(rc.deliveredAt !== null);
      assert.equal(rc.readAt, null);
      const q2 = await call<{ cables: Cable[] }>(url, lan, "GET", "/v1/cables/queue?limit=1");
      assert.deepEqual(
        q2.json.cables.map((c) => c.id),
        [routine[0]],
      );
      for (const dev of [kim, kim2]) {
        const qk = await call<{ cables: Cable[] }>(url, dev, "GET", "/v1/cables/queue?limit=1");
        assert.deepEqual(
          qk.json.cables.map((c) => c.id),
          [flashId],
          "another device's acknowledgement does not empty this one's queue",
        );
      }
      // kim's device acknowledges (originator member, not an addressee): only its own queue changes.
      const ack = await call<Cable>(url, kim, "POST", `/v1/cables/${flashId}/receipts`, { state: "read" });
      assert.equal(ack.json.receipts[0]!.readAt, null);
      assert.deepEqual(
        (await call<{ cables: Cable[] }>(url, kim2, "GET", "/v1/cables/queue?limit=1")).json.cables.map((c) => c.id),
        [flashId],
      );
      const read = await call<Cable>(url, lan, "POST", `/v1/cables/${flashId}/receipts`, { state: "read" });
      const rr = read.json.receipts[0]!;
      assert.equal(rr.readBy, "lan");
      assert.equal(rr.deliveredAt, rc.deliveredAt, "the first delivery stays");
      assert.ok(rr.readAt !== null);
    });
  });
}
