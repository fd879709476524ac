/**
 * Audit events ride in the message batch's transaction (delivery/batcher.ts): the events queued when a batch of
 * messages is written (a pushed message's reads, other requests' events) are appended in that transaction — one
 * commit instead of two — and each `record()` resolves only once that transaction committed; if it fails, they are
 * rejected like the messages. With no batch coming, the recorder commits alone.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { isValiseError } from "@valise/core";
import { openStore, type Store } from "../src/index.js";
import { AuditRecorder, type AuditRecord } from "../src/audit/recorder.js";
import { AppendBatcher } from "../src/delivery/batcher.js";
import { GroupCommit } from "../src/delivery/group-commit.js";
import type { ConversationStore } from "../src/storage/conversation-store.js";
import { DATABASE_KINDS, freshDb } from "./helpers/databases.js";

const CONV = "c-conv000001";
const DEV = "d-aaaaaaaaaa";

async function withStore(kind: "sqlite" | "postgres", fn: (s: Store) => Promise<void>) {
  const db = await freshDb(kind);
  const s = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
  try {
    await s.directory.addUnit("HQ/ASIA-1");
    const { enrollmentCode } = await s.directory.addUser({
      handle: "jnovak",
      units: ["HQ/ASIA-1"],
      clearance: "UNCLASSIFIED",
      role: "user",
    });
    await s.directory.redeemEnrollment(
      enrollmentCode,
      { id: DEV, name: "laptop", signaturePublicKey: new Uint8Array(32).fill(1) },
      [],
      () => {},
    );
    await s.conversations.create({
      id: CONV,
      kind: "group",
      label: "UNCLASSIFIED",
      unit: null,
      creator: "jnovak",
      creatorDevice: DEV,
    });
    await fn(s);
  } finally {
    await s.close();
    await db.dispose();
  }
}

const rec = (actor: string, action: AuditRecord["action"]): AuditRecord => ({
  actor,
  device: DEV,
  source: "10.0.0.1",
  client: null,
  action,
  object: CONV,
  label: "UNCLASSIFIED",
  unit: "HQ/ASIA-1",
  bytes: 3,
  outcome: "ok",
});

const msg = (idemKey: string) => ({
  conversationId: CONV,
  senderDevice: DEV,
  kind: "application" as const,
  epoch: 0,
  payload: new Uint8Array([1, 2, 3]),
  idemKey,
});

describe("group commit: items taken by another writer", () => {
  test("a deferring queue leaves its items to the other writer and writes only what is left, after one wait", async () => {
    const written: number[][] = [];
    const gc = new GroupCommit<number, string>(async (items) => {
      written.push(items);
      return items.map((i) => `own ${i}`);
    }, 10);
    let calls = 0;
    gc.defer = () => {
      calls++;
      return true; // always "about to write": the wait must still happen only once
    };
    const a = gc.submit(1);
    const b = gc.submit(2);
    // The other writer takes the first item (in the same turn as its write) and settles it itself.
    await new Promise((r) => setImmediate(r));
    const taken = gc.takeQueued(1);
    assert.deepEqual(
      taken.map((p) => p.item),
      [1],
    );
    for (const p of taken) p.resolve(`other ${p.item}`);
    assert.equal(await a, "other 1");
    assert.equal(await b, "own 2");
    assert.deepEqual(written, [[2]], "the taken item is not written again");
    assert.equal(calls, 1, "deferred once, not for as long as the predicate holds");
  });
});

for (const kind of DATABASE_KINDS) {
  describe(`audit events in the message batch's transaction on ${kind}`, () => {
    test("an event recorded with a batch pending is appended in the batch's transaction, durable when it resolves", async () => {
      await withStore(kind, async (s) => {
        const own: number[] = [];
        const recorder = new AuditRecorder(s.audit, Date.now, 2000, undefined, (n) => own.push(n));
        const batcher = new AppendBatcher(s.conversations, () => {}, 512, undefined, undefined, recorder);
        const before = await s.audit.size();
        // A pushed message's read and a send, in the same turn (as the WebSocket hub and a send frame do).
        const read = recorder.record(rec("pdvorak", "message.read"));
        const sent = await batcher.append({
          ...msg("k-rides-0001"),
          audit: recorder.event(rec("jnovak", "message.send")),
        });
        await read;
        assert.equal(sent.ok, true);
        assert.deepEqual(own, [], "the recorder did not commit on its own");
        assert.equal(await s.audit.size(), before + 2, "both events durable once their promises resolved");
        const reads = await s.audit.query({ actor: "pdvorak", action: "message.read", limit: 10 });
        assert.equal(reads.length, 1);
        const sends = await s.audit.query({ actor: "jnovak", action: "message.send", object: CONV, limit: 10 });
        assert.equal(sends.length, 1);
      });
    });

    test("with no batch coming the recorder commits alone, also right after a batch", async () => {
      await withStore(kind, async (s) => {
        const own: number[] = [];
        const recorder = new AuditRecorder(s.audit, Date.now, 2000, undefined, (n) => own.push(n));
        const batcher = new AppendBatcher(s.conversations, () => {}, 512, undefined, undefined, recorder);
        await recorder.record(rec("pdvorak", "message.read"));
        assert.deepEqual(own, [1]);
        await batcher.append(msg("k-alone-0001"));
        // Just after a batch the recorder waits for the next one once, then commits alone (nothing left waiting).
        await recorder.record(rec("pdvorak", "message.read"));
        assert.deepEqual(own, [1, 1]);
        assert.equal((await s.audit.query({ actor: "pdvorak", limit: 10 })).length, 2);
      });
    });
  });
}

test("if the batch's transaction fails, the events in it are rejected (store_error) and the recorder reports it", async () => {
  const failing = {
    appendBatch: async () => {
      throw new Error("disk I/O error");
    },
  } as unknown as ConversationStore;
  let ownWrites = 0;
  const log = {
    appendEvents: async () => {
      ownWrites++;
      return 0;
    },
  } as unknown as ConstructorParameters<typeof AuditRecorder>[0];
  const recorder = new AuditRecorder(log, Date.now);
  const batcher = new AppendBatcher(failing, () => {}, 512, undefined, undefined, recorder);
  const read = recorder.record(rec("pdvorak", "message.read"));
  const sent = batcher.append(msg("k-fails-0001"));
  await assert.rejects(sent, /disk I\/O error/);
  await assert.rejects(read, (e: unknown) => isValiseError(e) && e.code === "store_error");
  assert.equal(ownWrites, 0, "not written elsewhere as if nothing had happened");
  assert.notEqual(recorder.lastFailureAt, null, "readiness sees the failed audit append");
});
