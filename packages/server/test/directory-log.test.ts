/**
 * The directory log (key transparency) on every database: one entry per directory change in the change's own
 * transaction, signed checkpoints that verify with the printed verifier key, inclusion and consistency proofs and
 * C2SP tlog-tiles that match the entries, tampering caught by the verifier, and bad input answered 400.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  concatBytes,
  toHex,
  fromBase64,
  isValiseError,
  leafHash,
  leafHashReader,
  openNote,
  parseCheckpoint,
  parseDirectoryEntry,
  parseNoteVerifierKey,
  rootFromLeafHashes,
  rootFromReader,
  verifyConsistency,
  verifyInclusion,
  type Checkpoint,
} from "@valise/core";
import { buildApp, loadOrCreateLogKey, openStore, protocolServerMls, type LogKey, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const ORIGIN = "test.valise.example/directory";
const hex = (b: Uint8Array) => toHex(new Uint8Array(b));
const isCode = (e: unknown, code: string) => isValiseError(e) && e.code === code;

function newDeviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  return { raw: new Uint8Array(raw), privateKey };
}

for (const kind of DATABASE_KINDS) {
  describe(`directory log on ${kind}`, () => {
    let db: TestDb;
    let store: Store;
    let app: FastifyInstance;
    let key: LogKey;
    let token = "";

    async function enroll(handle: string, id: string) {
      const k = newDeviceKey();
      const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
      await store.directory.redeemEnrollment(
        enrollmentCode,
        { id, name: "t", signaturePublicKey: k.raw },
        [],
        () => {},
      );
      const ch = await app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: id } });
      const { challenge } = ch.json<{ challenge: string }>();
      const signature = sign(null, Buffer.from(`valise-login:${challenge}`), k.privateKey).toString("base64");
      const s = await app.inject({
        method: "POST",
        url: "/v1/auth/session",
        payload: { device: id, challenge, signature },
      });
      assert.equal(s.statusCode, 201);
      return { token: s.json<{ token: string }>().token, key: k.raw };
    }

    const get = (url: string, auth = true) =>
      app.inject({ method: "GET", url, headers: auth ? { authorization: `Bearer ${token}` } : {} });

    /** Waits for the signer to publish a checkpoint covering the whole log; returns it opened and parsed. */
    async function checkpoint(): Promise<{ cp: Checkpoint; note: string }> {
      const size = await store.directory.log.size();
      for (let i = 0; i < 200; i++) {
        const r = await get("/v1/log/directory/checkpoint", false);
        if (r.statusCode === 200) {
          assert.match(String(r.headers["content-type"]), /^text\/plain/);
          const opened = openNote(r.body, [parseNoteVerifierKey(key.vkey)]);
          assert.ok(opened.ok, "checkpoint verifies with the printed verifier key");
          const cp = parseCheckpoint(opened.text);
          if (cp.size >= size) return { cp, note: r.body };
        }
        await new Promise((d) => setTimeout(d, 20));
      }
      throw new Error("no checkpoint covering the log within 4 s");
    }

    async function allEntries(size: number): Promise<Uint8Array[]> {
      const out: Uint8Array[] = [];
      for (let n = 0; n * 256 < size; n++) {
        const w = Math.min(256, size - n * 256);
        const r = await get(`/v1/log/directory/tile/entries/${tileIndex(n)}${w < 256 ? `.p/${w}` : ""}`);
        assert.equal(r.statusCode, 200, r.body);
        const b = r.rawPayload;
        for (let at = 0; at < b.length;) {
          const len = (b[at]! << 8) | b[at + 1]!;
          out.push(new Uint8Array(b.subarray(at + 2, at + 2 + len)));
          at += 2 + len;
        }
      }
      assert.equal(out.length, size);
      return out;
    }

    before(async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      key = loadOrCreateLogKey({ dataDir: db.dataDir, origin: ORIGIN, env: {} });
      ({ app } = await buildApp({
        store,
        mls: protocolServerMls,
        loginRatePerMinute: 10_000,
        logKey: key,
        checkpointIntervalMs: 20,
      }));
      await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await store.directory.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      token = (await enroll("alice", "d-alice00001")).token;
    });
    after(async () => {
      await app.close();
      await store.close();
      await db.dispose();
    });

    test("the log key is a 0600 file, stable, bound to its origin, and pinned in the database", async () => {
      const file = join(db.dataDir, "log-key");
      if (process.platform !== "win32") assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(loadOrCreateLogKey({ dataDir: db.dataDir, env: {} }).vkey, key.vkey);
      assert.match(key.vkey, /^test\.valise\.example\/directory\+[0-9a-f]{8}\+/);
      assert.throws(() => loadOrCreateLogKey({ dataDir: db.dataDir, origin: "other.example/log", env: {} }));
      const other = loadOrCreateLogKey({ dataDir: `${db.dataDir}/other`, origin: ORIGIN, env: {} });
      await assert.rejects(store.directory.log.pinVerifierKey(other.vkey), (e) => isValiseError(e));
    });

    test("each directory change appends one entry in its transaction; a failed change appends nothing", async () => {
      const log = store.directory.log;
      const n0 = await log.size();
      await store.directory.addUnit("EMB/BEIJING");
      const { enrollmentCode } = await store.directory.addUser({
        handle: "bob",
        units: ["EMB/BEIJING", "HQ/ASIA-1"],
        clearance: "CONFIDENTIAL",
        role: "officer",
      });
      const devKey = new Uint8Array(32).fill(9);
      await store.directory.redeemEnrollment(
        enrollmentCode,
        { id: "d-bob0000001", name: "phone", signaturePublicKey: devKey },
        [],
        () => {},
      );
      await store.directory.setClearance("bob", "SECRET/ASIA");
      await store.directory.revokeDevice("d-bob0000001");
      assert.equal(await log.size(), n0 + 5);
      const entries = (await log.entries(n0, 5)).map((b) => {
        const p = parseDirectoryEntry(b);
        assert.ok(p.ok, "canonical entry");
        return p.entry;
      });
      assert.deepEqual(
        entries.map((e) => e.type),
        ["unit.add", "user.add", "device.add", "user.clearance", "device.revoke"],
      );
      assert.deepEqual(entries[1], {
        ...entries[1],
        user: "bob",
        units: ["EMB/BEIJING", "HQ/ASIA-1"],
        role: "officer",
      });
      assert.deepEqual(entries[2], {
        ...entries[2],
        user: "bob",
        device: "d-bob0000001",
        key: Buffer.from(devKey).toString("base64"),
      });
      assert.deepEqual(entries[3], { ...entries[3], user: "bob", clearance: "SECRET/ASIA" });
      assert.deepEqual(entries[4], { ...entries[4], user: "bob", device: "d-bob0000001" });

      // Failed changes: nothing appended.
      await assert.rejects(
        store.directory.addUser({ handle: "bob", units: [], clearance: "UNCLASSIFIED", role: "user" }),
        (e) => isCode(e, "conflict"),
      );
      await assert.rejects(store.directory.addUnit("EMB/BEIJING"), (e) => isCode(e, "conflict"));
      await assert.rejects(store.directory.revokeDevice("d-bob0000001"), (e) => isCode(e, "not_found"));
      await assert.rejects(store.directory.setClearance("nobody", "SECRET"), (e) => isCode(e, "not_found"));
      await assert.rejects(
        store.directory.redeemEnrollment(
          enrollmentCode,
          { id: "d-bob0000002", name: "x", signaturePublicKey: devKey },
          [],
          () => {},
        ),
        (e) => isCode(e, "enrollment_code_invalid"),
      );
      // A change that fails after its append rolls the entry back too, and the next append is still right.
      await assert.rejects(
        log.change(async (_trx, append) => {
          await append({ v: 1, type: "unit.add", unit: "X/ROLLED-BACK", maxLabel: "SECRET", time: 1 });
          throw new Error("boom");
        }),
        /boom/,
      );
      assert.equal(await log.size(), n0 + 5);
      await store.directory.addUnit("EMB/TOKYO");
      const size = await log.size();
      const leaves = (await log.entries(0, size)).map(leafHash);
      assert.deepEqual(await log.rootAt(size), rootFromLeafHashes(leaves));
    });

    test("concurrent directory changes serialize into one consistent tree", async () => {
      const log = store.directory.log;
      const n0 = await log.size();
      const results = await Promise.allSettled([
        ...Array.from({ length: 20 }, (_, i) => store.directory.addUnit(`PAR/U${i}`)),
        ...Array.from({ length: 5 }, () => store.directory.addUnit("PAR/DUP")),
        ...Array.from({ length: 5 }, (_, i) => store.directory.setClearance("alice", i % 2 ? "SECRET/ASIA" : "SECRET")),
      ]);
      const ok = results.filter((r) => r.status === "fulfilled").length;
      assert.equal(ok, 20 + 1 + 5, "one PAR/DUP wins, every other change succeeds");
      const size = await log.size();
      assert.equal(size, n0 + ok);
      const leaves = (await log.entries(0, size)).map(leafHash);
      assert.equal(leaves.length, size);
      assert.deepEqual(await log.rootAt(size), rootFromLeafHashes(leaves));
      await store.directory.setClearance("alice", "SECRET/ASIA");
    });

    test("two processes on one database (admin CLI beside the server) append to one tree", async () => {
      const other = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      try {
        await other.directory.addUnit("CLI/ONE");
        await store.directory.addUnit("SRV/ONE"); // this process's cached frontier is stale: it must reload
        await other.directory.addUnit("CLI/TWO");
        await store.directory.addUnit("SRV/TWO");
      } finally {
        await other.close();
      }
      const size = await store.directory.log.size();
      const leaves = (await store.directory.log.entries(0, size)).map(leafHash);
      assert.deepEqual(await store.directory.log.rootAt(size), rootFromLeafHashes(leaves));
    });

    test("checkpoint verifies; every entry's inclusion proof verifies against its root; tiles match", async () => {
      const { cp } = await checkpoint();
      assert.equal(cp.origin, ORIGIN);
      const entries = await allEntries(cp.size);
      const leaves = entries.map(leafHash);
      assert.deepEqual(cp.rootHash, rootFromLeafHashes(leaves));
      for (let i = 0; i < cp.size; i++) {
        const r = await get(`/v1/log/directory/proof/inclusion?index=${i}&size=${cp.size}`);
        assert.equal(r.statusCode, 200, r.body);
        const proof = r.json<{ proof: string[] }>().proof.map((p) => fromBase64(p));
        assert.ok(verifyInclusion(leaves[i]!, i, cp.size, proof, cp.rootHash), `entry ${i}`);
      }
      const t = await get(`/v1/log/directory/tile/0/000.p/${cp.size}`);
      assert.equal(t.statusCode, 200);
      assert.equal(t.headers["content-type"], "application/octet-stream");
      assert.equal(hex(t.rawPayload), hex(concatBytes(...leaves)));
      assert.equal((await get("/v1/log/directory/tile/0/000")).statusCode, 404, "no full tile yet");
      assert.equal((await get(`/v1/log/directory/tile/0/000.p/${cp.size + 1}`)).statusCode, 404);
    });

    test("consistency between two checkpoints verifies; full tiles and level-1 tiles match", async () => {
      const a = (await checkpoint()).cp;
      for (let i = 0; i < 260; i++) await store.directory.addUnit(`BULK/U${i}`);
      const b = (await checkpoint()).cp;
      assert.ok(b.size > 256);
      const r = await get(`/v1/log/directory/proof/consistency?from=${a.size}&to=${b.size}`, false);
      assert.equal(r.statusCode, 200, "consistency proofs are public (witnesses)");
      const proof = r.json<{ proof: string[] }>().proof.map((p) => fromBase64(p));
      assert.ok(verifyConsistency(a.size, b.size, proof, a.rootHash, b.rootHash));
      assert.ok(!verifyConsistency(a.size, b.size, proof, b.rootHash, b.rootHash));

      const leaves = (await allEntries(b.size)).map(leafHash);
      assert.deepEqual(b.rootHash, rootFromLeafHashes(leaves));
      const full = await get("/v1/log/directory/tile/0/000");
      assert.equal(full.statusCode, 200);
      assert.equal(hex(full.rawPayload), hex(concatBytes(...leaves.slice(0, 256))));
      const w = b.size - 256;
      const part = await get(`/v1/log/directory/tile/0/001.p/${w}`);
      assert.equal(hex(part.rawPayload), hex(concatBytes(...leaves.slice(256))));
      const up = await get("/v1/log/directory/tile/1/000.p/1");
      assert.equal(up.statusCode, 200);
      assert.equal(hex(up.rawPayload), hex(rootFromReader(leafHashReader(leaves), 256)));
    });

    test("a tampered entry in the database fails inclusion against the checkpoint", async () => {
      const { cp } = await checkpoint();
      const idx = 1;
      const [orig] = await store.directory.log.entries(idx, 1);
      const forged = new TextEncoder().encode(
        new TextDecoder().decode(orig).replace('"clearance":"SECRET/ASIA"', '"clearance":"TOP-SECRET/ASIA"'),
      );
      assert.notDeepEqual(forged, orig);
      await store.handle.db.updateTable("directory_log_entries").set({ data: forged }).where("idx", "=", idx).execute();
      try {
        const served = (await allEntries(cp.size))[idx]!;
        assert.deepEqual(served, forged);
        const r = await get(`/v1/log/directory/proof/inclusion?index=${idx}&size=${cp.size}`);
        const proof = r.json<{ proof: string[] }>().proof.map((p) => fromBase64(p));
        assert.ok(!verifyInclusion(leafHash(served), idx, cp.size, proof, cp.rootHash), "tampering is caught");
      } finally {
        await store.handle.db
          .updateTable("directory_log_entries")
          .set({ data: orig! })
          .where("idx", "=", idx)
          .execute();
      }
    });

    test("bad query parameters and tile paths are 400 with {code,message}; private endpoints need a session", async () => {
      const size = await store.directory.log.size();
      const bad = [
        "proof/inclusion",
        "proof/inclusion?index=0",
        "proof/inclusion?index=-1&size=2",
        "proof/inclusion?index=1.5&size=2",
        "proof/inclusion?index=01&size=2",
        "proof/inclusion?index=1e0&size=2",
        "proof/inclusion?index=abc&size=2",
        "proof/inclusion?index=0&index=1&size=2",
        "proof/inclusion?index=0&size=2&extra=1",
        "proof/inclusion?index=99999999999999999999&size=2",
        `proof/inclusion?index=${size}&size=${size}`,
        `proof/inclusion?index=0&size=${size + 1}`,
        "proof/consistency?from=0&to=1",
        "proof/consistency?from=2&to=1",
        `proof/consistency?from=1&to=${size + 1}`,
        "proof/consistency?from=&to=1",
        "tile/64/000",
        "tile/00/000",
        "tile/0/1",
        "tile/0/x000/001",
        "tile/0/001/x002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p",
        "tile/abc/000",
        "tile/entries/",
        "tile/0/x999/x999/x999/x999/x999/999",
      ];
      for (const path of bad) {
        const r = await get(`/v1/log/directory/${path}`);
        assert.equal(r.statusCode, 400, `${path}: ${r.body}`);
        const body = r.json<{ code: string; message: string }>();
        assert.equal(typeof body.code, "string");
        assert.equal(typeof body.message, "string");
      }
      for (const path of ["proof/inclusion?index=0&size=1", "tile/0/000.p/1", "tile/entries/000.p/1"])
        assert.equal((await get(`/v1/log/directory/${path}`, false)).statusCode, 401, path);
      assert.equal((await get("/v1/log/directory/checkpoint", false)).statusCode, 200);
      assert.equal((await get("/v1/log/directory/tile/0/x001/000")).statusCode, 404, "valid path, not there yet");
    });
  });
}

/** C2SP tlog-tiles index encoding: 3-digit groups, all but the last prefixed with x. */
function tileIndex(n: number): string {
  const groups: string[] = [];
  do {
    groups.unshift(String(n % 1000).padStart(3, "0"));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
}
