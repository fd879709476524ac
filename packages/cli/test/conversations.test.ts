/**
 * The foundation's promises, end to end through a real server on 127.0.0.1 (SQLite, and PostgreSQL when configured):
 * two users with three devices converse; an offline device catches up in order; concurrent commits in one epoch
 * give exactly one 409 and both sides converge; a removed device reads nothing new; a lost state rejoins; the door
 * refuses a key package the directory does not vouch for; no plaintext reaches the database, data dir or logs.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isValiseError, fromBase64, utf8, type DeviceId, type UserHandle } from "@valise/core";
import { generateDeviceKeys, generateKeyPackages, processMessage, decodeGroup, type Group } from "@valise/protocol";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { world, texts } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
];

for (const kind of DATABASE_KINDS) {
  describe(`conversations on ${kind}`, { timeout: 120_000 }, () => {
    test("two users, three devices converse; an offline device catches up in order", async () => {
      const w = await world(kind, people);
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        const phone = await w.enroll("jnovak", "phone");
        const bob = await w.enroll("pdvorak");
        const sent = await laptop.send("pdvorak", "first", ASIA);
        assert.equal(sent.label, ASIA);
        const b1 = await bob.sync();
        assert.deepEqual(texts(b1), ["first"]);
        assert.ok(b1.some((i) => i.type === "joined" && i.from === "jnovak"));
        const m = b1.find((i) => i.type === "message")!;
        assert.equal(m.from, "jnovak");
        assert.equal(m.label, ASIA);
        // The phone stays offline while five messages flow both ways.
        for (let i = 0; i < 3; i++) await bob.send("jnovak", `reply ${i}`, ASIA);
        await laptop.send("pdvorak", "second", ASIA);
        await bob.send("jnovak", "reply 3", ASIA);
        assert.deepEqual(texts(await laptop.sync()), ["reply 0", "reply 1", "reply 2", "reply 3"]);
        const caught = await phone.sync();
        // Own-user device sees both sides from the epoch it joined: everything after the laptop's first commit.
        assert.deepEqual(texts(caught), ["first", "reply 0", "reply 1", "reply 2", "second", "reply 3"]);
        const seqs = caught.filter((i) => i.type === "message").map((i) => i.seq);
        assert.deepEqual(
          seqs,
          [...seqs].sort((a, b) => a - b),
        );
        // Nothing is delivered twice.
        assert.deepEqual(texts(await phone.sync()), []);
        assert.deepEqual(texts(await bob.sync()), ["second"]);
      } finally {
        await w.close();
      }
    });

    test("two members commit in the same epoch: one 409, both converge", async () => {
      const w = await world(kind, people);
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        const { conversation } = await a.send("pdvorak", "hello", ASIA);
        await b.sync();
        const before = w.statuses.filter((s) => s === 409).length;
        await Promise.all([a.updateKeys(conversation), b.updateKeys(conversation)]);
        assert.equal(w.statuses.filter((s) => s === 409).length - before, 1, "exactly one commit lost the race");
        await a.send("pdvorak", "after race A", ASIA);
        await b.send("jnovak", "after race B", ASIA);
        assert.deepEqual(texts(await b.sync()), ["after race A"]);
        assert.deepEqual(texts(await a.sync()), ["after race B"]);
        const conv = await w.server.store.conversations.get(conversation);
        assert.equal(conv!.epoch, 3, "create+add, then two updates: no fork");
      } finally {
        await w.close();
      }
    });

    test("a stale sender gets 409 for an application message, catches up and resends", async () => {
      const w = await world(kind, people);
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        const { conversation } = await a.send("pdvorak", "one", ASIA);
        await b.sync();
        await a.updateKeys(conversation); // b has not seen this commit
        const before = w.statuses.filter((s) => s === 409).length;
        await b.sendText(conversation, "from the past");
        assert.equal(w.statuses.filter((s) => s === 409).length - before, 1);
        assert.deepEqual(texts(await a.sync()), ["from the past"]);
      } finally {
        await w.close();
      }
    });

    test("a revoked device is removed before the next message and cannot read it", async () => {
      const w = await world(kind, people);
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        const phone = await w.enroll("jnovak", "phone");
        const bob = await w.enroll("pdvorak");
        const { conversation } = await laptop.send("pdvorak", "before", ASIA);
        await phone.sync();
        await bob.sync();
        // Keep the phone's state as an attacker holding the stolen phone would.
        await phone.save();
        const stolen = decodeGroup(
          fromBase64(
            (phone as unknown as { profile: { conversations: Record<string, { group: string }> } }).profile
              .conversations[conversation]!.group,
          ),
        );
        await w.server.store.directory.revokeDevice(phone.deviceId);
        // The server refuses new application messages while the revoked device is still in the group (409
        // pending_removal); the sender commits the removal, then re-encrypts.
        const before = w.statuses.filter((x) => x === 409).length;
        await bob.sendText(conversation, "after revocation SECRET-PLAN");
        assert.equal(
          w.statuses.filter((x) => x === 409).length - before,
          1,
          "server refused the message to a group with a revoked device",
        );
        assert.deepEqual(texts(await laptop.sync()), ["after revocation SECRET-PLAN"]);
        // The phone can no longer log in…
        await assert.rejects(phone.sync(), (e) => isValiseError(e) && e.code === "unauthenticated");
        // …and even with every ciphertext handed over, its last state cannot open the new message.
        const log = await w.server.store.conversations.fetch(conversation, 0, 100, { joinedSeq: 1, leftSeq: null });
        const secret = log.filter((m) => m.kind === "application").at(-1)!;
        let g: Group = stolen;
        let opened = false;
        for (const m of log.filter((x) => x.seq > 2)) {
          try {
            const r = await processMessage(
              {
                keys: await generateDeviceKeys("jnovak" as UserHandle, phone.deviceId as DeviceId),
                verifier: { verifyDevice: async () => ({ ok: true }) },
              },
              g,
              m.payload,
            );
            g = r.group;
            if (m.seq === secret.seq && r.kind === "application") opened = true;
          } catch {
            /* expected once removed */
          }
        }
        assert.equal(opened, false, "revoked phone decrypted a message sent after revocation");
      } finally {
        await w.close();
      }
    });

    test("a device that lost its group state rejoins externally and converses", async () => {
      const w = await world(kind, people);
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        const { conversation } = await a.send("pdvorak", "one", ASIA);
        await b.sync();
        await b.rejoin(conversation);
        await b.send("jnovak", "back again", ASIA);
        assert.deepEqual(texts(await a.sync()), ["back again"]);
        await a.send("pdvorak", "welcome back", ASIA);
        assert.deepEqual(texts(await b.sync()), ["welcome back"]);
      } finally {
        await w.close();
      }
    });

    test("the door refuses a key package the directory does not vouch for (server swaps a key)", async () => {
      const w = await world(kind, people);
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        // A malicious server replaces bob's key packages with ones made with the attacker's key.
        const evil = await generateDeviceKeys("pdvorak" as UserHandle, b.deviceId as DeviceId);
        const [kp] = await generateKeyPackages(evil, 1);
        await w.server.store.handle.db.deleteFrom("key_packages").where("device_id", "=", b.deviceId).execute();
        await w.server.store.handle.db
          .insertInto("key_packages")
          .values({ ref: kp!.ref, device_id: b.deviceId, data: kp!.publicBytes, created_at: 0 })
          .execute();
        await assert.rejects(
          a.send("pdvorak", "never sent", ASIA),
          (e) => isValiseError(e) && e.code === "device_not_verified",
        );
      } finally {
        await w.close();
      }
    });

    test("an uncleared recipient is refused before anything is encrypted", async () => {
      const w = await world(kind, [...people, { handle: "clerk", units: ["HQ/CONSULAR"], clearance: "CONFIDENTIAL" }]);
      try {
        const a = await w.enroll("jnovak");
        await w.enroll("clerk");
        await assert.rejects(a.send("clerk", "asia only", ASIA), (e) => isValiseError(e) && e.code === "not_cleared");
      } finally {
        await w.close();
      }
    });

    if (kind === "sqlite") {
      test("ciphertext only: a unique marker is in no database file, WAL, data directory file or log line", async () => {
        const w = await world(kind, people);
        const MARK = `PLAINTEXT-MARKER-${Math.random().toString(36).slice(2)}`;
        try {
          const a = await w.enroll("jnovak");
          const b = await w.enroll("pdvorak");
          for (let i = 0; i < 5; i++) await a.send("pdvorak", `${MARK} a${i}`, ASIA);
          for (let i = 0; i < 5; i++) await b.send("jnovak", `${MARK} b${i}`, ASIA);
          assert.equal(texts(await a.sync()).filter((t) => t.includes(MARK)).length, 5);
          assert.equal(texts(await b.sync()).filter((t) => t.includes(MARK)).length, 10 - 5);
          const needle = Buffer.from(utf8(MARK));
          const files: string[] = [];
          const walk = (d: string) => {
            for (const n of readdirSync(d)) {
              const p = join(d, n);
              if (statSync(p).isDirectory()) walk(p);
              else files.push(p);
            }
          };
          walk(w.server.db.dataDir);
          assert.ok(
            files.some((f) => f.endsWith(".sqlite-wal")),
            "the WAL is scanned too",
          );
          for (const f of files) assert.equal(readFileSync(f).indexOf(needle), -1, `marker found in ${f}`);
          assert.ok(w.server.logLines.length > 10, "server logged requests");
          for (const line of w.server.logLines) assert.ok(!line.includes(MARK), `marker in log line ${line}`);
        } finally {
          await w.close();
        }
      });
    }
  });
}

test(
  "live push: a message reaches a listening device over the WebSocket without polling",
  { timeout: 30_000 },
  async () => {
    const { nodeWebSocket } = await import("@valise/client/node/websocket");
    const w = await world("sqlite", people);
    try {
      const a = await w.enroll("jnovak");
      const b = await w.enroll("pdvorak");
      await a.send("pdvorak", "setup", ASIA);
      await b.sync();
      const got = new Promise<string[]>((resolve) => {
        void b
          .listen(nodeWebSocket, (items) => {
            const t = texts(items);
            if (t.length > 0) resolve(t);
          })
          .then((h) => (closer = h));
      });
      let closer: { close(): void } | undefined;
      await new Promise((r) => setTimeout(r, 200));
      await a.send("pdvorak", "pushed", ASIA);
      assert.deepEqual(await got, ["pushed"]);
      closer?.close();
    } finally {
      await w.close();
    }
  },
);
