import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb } from "./helpers/databases.js";
import { isValiseError } from "@valise/core";

async function withStore(kind: "sqlite" | "postgres", fn: (s: Store) => Promise<void>) {
  const db = await freshDb(kind);
  const s = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
  try {
    await fn(s);
  } finally {
    await s.close();
    await db.dispose();
  }
}

async function seed(s: Store) {
  await s.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  const { enrollmentCode } = await s.directory.addUser({
    handle: "jnovak",
    units: ["HQ/ASIA-1"],
    clearance: "SECRET/ASIA",
    role: "user",
  });
  await s.directory.redeemEnrollment(
    enrollmentCode,
    { id: "d-aaaaaaaaaa", name: "laptop", signaturePublicKey: new Uint8Array(32).fill(1) },
    [],
    () => {},
  );
  const c2 = await s.directory.addUser({
    handle: "pdvorak",
    units: ["HQ/ASIA-1"],
    clearance: "CONFIDENTIAL",
    role: "user",
  });
  await s.directory.redeemEnrollment(
    c2.enrollmentCode,
    { id: "d-bbbbbbbbbb", name: "phone", signaturePublicKey: new Uint8Array(32).fill(2) },
    [],
    () => {},
  );
  await s.conversations.create({
    id: "c-conv000001",
    kind: "group",
    label: "UNCLASSIFIED",
    unit: null,
    creator: "jnovak",
    creatorDevice: "d-aaaaaaaaaa",
  });
}

const msg = (over: Partial<Parameters<Store["conversations"]["appendBatch"]>[0][number]> = {}) => ({
  conversationId: "c-conv000001",
  senderDevice: "d-aaaaaaaaaa",
  kind: "application" as const,
  epoch: 0,
  payload: new Uint8Array([1, 2, 3]),
  idemKey: `k-${Math.random()}`,
  ...over,
});

for (const kind of DATABASE_KINDS) {
  describe(`storage on ${kind}`, () => {
    test("enrollment codes are one-time and stored hashed", async () => {
      await withStore(kind, async (s) => {
        await s.directory.addUnit("EMB/BEIJING");
        const { enrollmentCode } = await s.directory.addUser({
          handle: "alice",
          units: ["EMB/BEIJING"],
          clearance: "CONFIDENTIAL/ASIA",
          role: "user",
        });
        const dev = { id: "d-1111111111", name: "x", signaturePublicKey: new Uint8Array(32).fill(7) };
        const u = await s.directory.redeemEnrollment(enrollmentCode.toLowerCase(), dev, [], () => {});
        assert.equal(u.handle, "alice");
        assert.deepEqual(u.units, ["EMB/BEIJING"]);
        assert.equal(u.devices.length, 1);
        await assert.rejects(
          s.directory.redeemEnrollment(
            enrollmentCode,
            { ...dev, id: "d-2222222222", signaturePublicKey: new Uint8Array(32).fill(8) },
            [],
            () => {},
          ),
          (e) => isValiseError(e) && e.code === "enrollment_code_invalid",
        );
        const rows = await s.handle.db.selectFrom("enrollment_codes").selectAll().execute();
        assert.ok(rows.every((r) => !r.code_hash.includes(enrollmentCode.replace(/-/g, ""))));
      });
    });

    test("unknown unit and duplicate user are refused", async () => {
      await withStore(kind, async (s) => {
        await assert.rejects(
          s.directory.addUser({ handle: "bob", units: ["HQ/NOPE"], clearance: "SECRET", role: "user" }),
          (e) => isValiseError(e) && e.code === "not_found",
        );
        await s.directory.addUnit("HQ/X");
        await s.directory.addUser({ handle: "bob", units: ["HQ/X"], clearance: "SECRET", role: "user" });
        await assert.rejects(
          s.directory.addUser({ handle: "bob", units: [], clearance: "SECRET", role: "user" }),
          (e) => isValiseError(e) && e.code === "conflict",
        );
      });
    });

    test("ordered log: gapless seqs, first commit per epoch wins, stale app message conflicts", async () => {
      await withStore(kind, async (s) => {
        await seed(s);
        const r = await s.conversations.appendBatch([
          msg(),
          msg(),
          msg({
            kind: "commit",
            commit: {
              added: ["d-bbbbbbbbbb"],
              removed: [],
              welcome: new Uint8Array([9]),
              groupInfo: new Uint8Array([8]),
              external: false,
            },
          }),
        ]);
        assert.deepEqual(
          r.map((x) => (x.ok ? x.seq : -1)),
          [1, 2, 3],
        );
        const second = await s.conversations.appendBatch([
          msg({ kind: "commit", commit: { added: [], removed: [], welcome: null, groupInfo: null, external: false } }),
        ]);
        assert.deepEqual(second[0], { ok: false, code: "epoch_conflict", epoch: 1 });
        const stale = await s.conversations.appendBatch([msg({ epoch: 0 })]);
        assert.equal(stale[0]!.ok, false);
        const fresh = await s.conversations.appendBatch([msg({ epoch: 1 })]);
        assert.ok(fresh[0]!.ok && fresh[0]!.seq === 4);
        // The added device reads from after the commit that added it, and got the welcome in its inbox.
        const m = await s.conversations.membership("c-conv000001", "d-bbbbbbbbbb");
        assert.deepEqual(m, { joinedSeq: 4, leftSeq: null });
        const seen = await s.conversations.fetch("c-conv000001", 0, 100, m);
        assert.deepEqual(
          seen.map((x) => x.seq),
          [4],
        );
        const inbox = await s.conversations.fetchInbox("d-bbbbbbbbbb", 0, 10);
        assert.equal(inbox.length, 1);
        assert.equal(inbox[0]!.commitSeq, 3);
        assert.deepEqual(await s.conversations.groupInfo("c-conv000001"), new Uint8Array([8]));
      });
    });

    test("idempotency key: a retry returns the first result and stores nothing new", async () => {
      await withStore(kind, async (s) => {
        await seed(s);
        const a = await s.conversations.appendBatch([msg({ idemKey: "same" })]);
        const b = await s.conversations.appendBatch([msg({ idemKey: "same", payload: new Uint8Array([4]) })]);
        assert.ok(a[0]!.ok && b[0]!.ok);
        assert.equal(a[0]!.seq, b[0]!.seq);
        assert.equal(b[0]!.duplicate, true);
        const conv = await s.conversations.get("c-conv000001");
        assert.equal(conv!.headSeq, 1);
      });
    });

    test("removed device stops reading at its removal; one-time key packages keep a last resort", async () => {
      await withStore(kind, async (s) => {
        await seed(s);
        await s.conversations.appendBatch([
          msg({
            kind: "commit",
            commit: { added: ["d-bbbbbbbbbb"], removed: [], welcome: null, groupInfo: null, external: false },
          }),
        ]);
        await s.conversations.appendBatch([msg({ epoch: 1 })]);
        await s.conversations.appendBatch([
          msg({
            epoch: 1,
            kind: "commit",
            commit: { added: [], removed: ["d-bbbbbbbbbb"], welcome: null, groupInfo: null, external: false },
          }),
        ]);
        await s.conversations.appendBatch([msg({ epoch: 2 })]);
        const m = await s.conversations.membership("c-conv000001", "d-bbbbbbbbbb");
        const seen = await s.conversations.fetch("c-conv000001", 0, 100, m!);
        assert.deepEqual(
          seen.map((x) => x.seq),
          [2, 3],
        );

        await s.directory.addKeyPackages("d-bbbbbbbbbb", [
          { ref: "r1", data: new Uint8Array([1]) },
          { ref: "r2", data: new Uint8Array([2]) },
        ]);
        const c1 = await s.directory.claimKeyPackages(["d-bbbbbbbbbb"]);
        const c2 = await s.directory.claimKeyPackages(["d-bbbbbbbbbb"]);
        const c3 = await s.directory.claimKeyPackages(["d-bbbbbbbbbb"]);
        assert.deepEqual(
          [c1, c2, c3].map((c) => Array.from(c[0]!.keyPackage)),
          [[1], [2], [2]],
        );
      });
    });

    test("sessions: challenge is one-time, token is stored hashed", async () => {
      await withStore(kind, async (s) => {
        await seed(s);
        const { challenge } = await s.directory.createChallenge("d-aaaaaaaaaa");
        assert.equal(await s.directory.consumeChallenge(challenge, "d-bbbbbbbbbb"), false);
        assert.equal(await s.directory.consumeChallenge(challenge, "d-aaaaaaaaaa"), true);
        assert.equal(await s.directory.consumeChallenge(challenge, "d-aaaaaaaaaa"), false);
        const { token } = await s.directory.createSession("d-aaaaaaaaaa", "jnovak");
        assert.equal((await s.directory.getSession(token))!.handle, "jnovak");
        const rows = await s.handle.db.selectFrom("sessions").selectAll().execute();
        assert.ok(rows.every((r) => r.token_hash !== token));
        await s.directory.revokeDevice("d-aaaaaaaaaa");
        assert.equal(await s.directory.getSession(token), null);
      });
    });
  });
}
