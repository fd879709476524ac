/**
 * Server hardening at the storage layer (issue 13), on every database: one append's error never fails the others in
 * its batch (finding 4).
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb } from "./helpers/databases.js";
import type { AppendRequest } from "../src/storage/conversation-store.js";

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
  for (const [handle, device] of [
    ["mallory", "d-mallory001"],
    ["alice", "d-alice00001"],
  ] as const) {
    const { enrollmentCode } = await s.directory.addUser({
      handle,
      units: ["HQ/ASIA-1"],
      clearance: "SECRET/ASIA",
      role: "user",
    });
    await s.directory.redeemEnrollment(
      enrollmentCode,
      { id: device, name: "laptop", signaturePublicKey: new Uint8Array(32).fill(device.charCodeAt(2)) },
      [],
      () => {},
    );
  }
  for (const [id, creator, dev] of [
    ["c-mallory001", "mallory", "d-mallory001"],
    ["c-mallory002", "mallory", "d-mallory001"],
    ["c-alice00001", "alice", "d-alice00001"],
  ] as const)
    await s.conversations.create({ id, kind: "group", label: "UNCLASSIFIED", unit: null, creator, creatorDevice: dev });
}

const msg = (over: Partial<AppendRequest>): AppendRequest => ({
  conversationId: "c-alice00001",
  senderDevice: "d-alice00001",
  kind: "application",
  epoch: 0,
  payload: new Uint8Array([1, 2, 3]),
  idemKey: `k-${Math.random().toString(36).slice(2)}`,
  ...over,
});

for (const kind of DATABASE_KINDS) {
  describe(`append batches on ${kind}`, () => {
    test("an idempotency key reused for another conversation fails only that request, not the batch", async () => {
      await withStore(kind, async (s) => {
        await seed(s);
        const first = await s.conversations.appendBatch([
          msg({ conversationId: "c-mallory001", senderDevice: "d-mallory001", idemKey: "reused-key" }),
        ]);
        assert.ok(first[0]!.ok);
        const auditBefore = await s.audit.size();
        const event = (object: string) => ({
          id: `a-${Math.random().toString(36).slice(2, 12)}`,
          time: new Date().toISOString(),
          actor: "x",
          device: null,
          source: "127.0.0.1",
          client: null,
          action: "message.send" as const,
          object,
          target_device: null,
          label: null,
          unit: null,
          bytes: 3,
          canary: false,
          outcome: "ok" as const,
        });
        // Mallory's reuse sits between two of alice's sends in one group commit.
        const r = await s.conversations.appendBatch([
          msg({ audit: event("c-alice00001") }),
          msg({
            conversationId: "c-mallory002",
            senderDevice: "d-mallory001",
            idemKey: "reused-key",
            audit: event("c-mallory002"),
          }),
          msg({ audit: event("c-alice00001") }),
          // A request the database itself refuses (NOT NULL): fails alone as well.
          msg({ idemKey: null as unknown as string }),
          msg({}),
        ]);
        assert.equal(r[0]!.ok, true);
        assert.deepEqual(r[1], { ok: false, code: "idempotency_conflict" });
        assert.equal(r[2]!.ok, true);
        assert.equal(r[3]!.ok, false);
        assert.equal(r[4]!.ok, true);
        // Gapless: the failed requests left no hole and no partial write.
        assert.deepEqual(
          r.flatMap((x) => (x.ok ? [x.seq] : [])),
          [1, 2, 3],
        );
        const conv = await s.conversations.get("c-alice00001");
        assert.equal(conv!.headSeq, 3);
        assert.equal((await s.conversations.get("c-mallory002"))!.headSeq, 0);
        // Only the stored messages' events were appended.
        assert.equal(await s.audit.size(), auditBefore + 2);
      });
    });
  });
}
