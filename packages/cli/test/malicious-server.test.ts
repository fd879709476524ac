/**
 * Key transparency against a server that lies (issue 4 items 5 and 7; SCENARIOS.md stories 4 and 7). Devices pin
 * the log key, two test witnesses' keys and quorum 2 at enrollment; the server signs checkpoints and the test
 * harness (malicious.ts) plays the witnesses and, on demand, the attacker. Each misbehaviour must be caught:
 *   - a device added to the database but not to the log: senders never encrypt to it, go on with the logged devices,
 *     and alert (and so does the device's own user);
 *   - a device logged for a user: that user's own device alerts, naming it;
 *   - a forked log shown to one device, a rolled-back checkpoint, a checkpoint short of quorum: refused;
 *   - a replayed old directory answer (a revocation missing): not believed — the log's revocation holds, and alerts.
 * And the honest path: the door accepts logged devices, a new phone raises an alert that the user dismisses.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { formatCheckpoint, isValiseError, signNote, type DeviceId, type UserHandle } from "@valise/core";
import { generateDeviceKeys, generateKeyPackages } from "@valise/protocol";
import type { ReceivedItem, ValiseClient } from "@valise/client";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { world, texts, type World } from "./helpers.js";
import { cosign, noteText } from "./malicious.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
];

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  isValiseError(e) && e.code === code && (re === undefined || re.test(e.message));

/** Waits until the server has signed a checkpoint covering every entry of its directory log. */
async function settled(w: World): Promise<number> {
  const log = w.server.store.directory.log;
  for (let i = 0; i < 500; i++) {
    const size = await log.size();
    if ((await log.latestCheckpoint())?.size === size) return size;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no checkpoint covers the log");
}

/** A checkpoint the server never had, signed with its log key and cosigned by the (compromised) witnesses. */
function forged(w: World, size: number, rootHash: Uint8Array): string {
  const key = w.server.logKey!;
  const text = formatCheckpoint({ origin: key.origin, size, rootHash, extensions: [] });
  return signNote(text, [key.signer, ...w.witnesses.map((x) => x.signer)]);
}

function alerts(items: ReceivedItem[]): string[] {
  return items.filter((i) => i.type === "alert").map((i) => i.text);
}

function state(c: ValiseClient) {
  return c.transparency!.state;
}

for (const kind of DATABASE_KINDS) {
  describe(`key transparency against a malicious server on ${kind}`, { timeout: 400_000 }, () => {
    test("honest server: devices converse through the log-checked door; a new phone alerts the laptop until dismissed", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        const bob = await w.enroll("pdvorak", "desk");
        assert.ok(laptop.transparency && bob.transparency, "the bundle turned key transparency on");
        await laptop.send("pdvorak", "first", ASIA);
        assert.deepEqual(texts(await bob.sync()), ["first"]);
        assert.deepEqual(alerts(await laptop.sync()), [], "the laptop's own enrollment is no alert");
        assert.ok(state(bob).checkpoint!.size > 0 && state(bob).scanned.size === state(bob).checkpoint!.size);

        // Story 4: a new phone. The laptop alerts; the phone does not alert about the laptop (it predates it).
        const phone = await w.enroll("jnovak", "phone");
        await settled(w);
        const seen = alerts(await laptop.sync());
        assert.equal(seen.length, 1, seen.join("\n"));
        assert.match(seen[0]!, /New device added to your account: phone/);
        assert.ok(seen[0]!.includes(phone.deviceId));
        assert.deepEqual(alerts(await phone.sync()), []);
        const before = await laptop.ownDevices();
        assert.equal(before.verified, true);
        assert.deepEqual(
          before.devices.map((d) => [d.name, d.self, d.expected]),
          [
            ["laptop", true, true],
            ["phone", false, false],
          ],
        );
        assert.equal(await laptop.ackDevice(phone.deviceId), true);
        const after = await laptop.ownDevices();
        assert.ok(after.devices.every((d) => d.expected));
        assert.ok(after.alerts.every((a) => a.acked));
        assert.deepEqual(alerts(await laptop.sync()), [], "a dismissed alert does not come back");

        // The phone is in the conversation (through the door) and reads from its epoch on.
        await bob.send("jnovak", "to both", ASIA);
        assert.deepEqual(texts(await laptop.sync()), ["to both"]);
        assert.deepEqual(texts(await phone.sync()), ["to both"]);

        // A revocation is removed before the next message, and the laptop is told.
        await w.server.store.directory.revokeDevice(phone.deviceId);
        await settled(w);
        await bob.send("jnovak", "after revocation", ASIA);
        const items = await laptop.sync();
        assert.deepEqual(texts(items), ["after revocation"]);
        assert.ok(alerts(items).some((t) => t.includes(`(${phone.deviceId}) was revoked`)));
      } finally {
        await w.close();
      }
    });

    test("a device added to the database but not to the log: never encrypted to; the sender goes on and both sides are alerted", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        const { conversation } = await a.send("pdvorak", "hello", ASIA);
        await b.sync();
        // The attacker has the database: a ghost device for pdvorak with a valid key package, but no log entry.
        const ghostId = "d-ghost0device0a";
        const ghost = await generateDeviceKeys("pdvorak" as UserHandle, ghostId as DeviceId);
        const [kp] = await generateKeyPackages(ghost, 1);
        const db = w.server.store.handle.db;
        await db
          .insertInto("devices")
          .values({
            id: ghostId,
            handle: "pdvorak",
            name: "ghost",
            signature_public_key: ghost.signaturePublicKey,
            created_at: Date.now(),
            revoked_at: null,
          })
          .execute();
        const addKp = () =>
          db
            .insertInto("key_packages")
            .values({ ref: `${kp!.ref}-${Math.random()}`, device_id: ghostId, data: kp!.publicBytes, created_at: 0 })
            .execute();
        await addKp();
        const members = () => a.conversationMembers(conversation).map((m) => m.device);
        // The send goes through to the devices the log proves; the ghost is never added.
        await a.send("pdvorak", "never to the ghost", ASIA);
        assert.ok(!members().includes(ghostId), "the ghost is not in the group");
        const bItems = await b.sync();
        assert.deepEqual(texts(bItems), ["never to the ghost"]);
        const ghostAlert = new RegExp(`device "${ghostId}" is in the server's database but not in the directory log`);
        assert.ok(
          alerts(await a.sync()).some((t) => ghostAlert.test(t)),
          "the sender is alerted",
        );
        assert.ok(
          alerts(bItems).some((t) => ghostAlert.test(t)),
          "the ghost's own user is alerted",
        );
        // Pointing the ghost at another device's log entry does not help.
        await addKp();
        const bobEntry = (await a.transport.user("pdvorak")).devices.find((d) => d.id === b.deviceId)!.logIndex;
        w.evil.user = (h, body) => {
          const u = JSON.parse(body) as { devices: { id: string; logIndex: number | null }[] };
          for (const d of u.devices) if (d.id === ghostId) d.logIndex = bobEntry ?? null;
          return JSON.stringify(u);
        };
        a.verifier.forget();
        await a.send("pdvorak", "still never to the ghost", ASIA);
        assert.ok(!members().includes(ghostId));
        const v = await a.verifier.verifyDevice({
          user: "pdvorak" as UserHandle,
          device: ghostId as DeviceId,
          signaturePublicKey: ghost.signaturePublicKey,
        });
        assert.ok(!v.ok && /not in the directory log/.test(v.reason), JSON.stringify(v));
      } finally {
        await w.close();
      }
    });

    test("a key package with a swapped key is refused: the log holds the device's real key", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        const evil = await generateDeviceKeys("pdvorak" as UserHandle, b.deviceId as DeviceId);
        const [kp] = await generateKeyPackages(evil, 1);
        const db = w.server.store.handle.db;
        await db.deleteFrom("key_packages").where("device_id", "=", b.deviceId).execute();
        await db
          .insertInto("key_packages")
          .values({ ref: kp!.ref, device_id: b.deviceId, data: kp!.publicBytes, created_at: 0 })
          .execute();
        // Even the directory row says the attacker's key: the log entry does not.
        await db
          .updateTable("devices")
          .set({ signature_public_key: evil.signaturePublicKey })
          .where("id", "=", b.deviceId)
          .execute();
        await assert.rejects(
          a.send("pdvorak", "never sent", ASIA),
          isCode("device_not_verified", /different key in the directory log/),
        );
      } finally {
        await w.close();
      }
    });

    test("a device logged for a user (story 7): their own device alerts, naming it", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        assert.deepEqual(alerts(await laptop.sync()), []);
        // The attacker holds the server (database and log key) and logs a device through the directory itself.
        const ghostId = "d-ghost0device0b";
        const ghost = await generateDeviceKeys("jnovak" as UserHandle, ghostId as DeviceId);
        const { enrollmentCode } = await w.server.store.directory.newEnrollmentCode("jnovak");
        await w.server.store.directory.redeemEnrollment(
          enrollmentCode,
          { id: ghostId, name: "ambassador-tablet", signaturePublicKey: ghost.signaturePublicKey },
          [],
          () => {},
        );
        await settled(w);
        const seen = alerts(await laptop.sync());
        assert.equal(seen.length, 1, seen.join("\n"));
        assert.ok(seen[0]!.includes(ghostId) && seen[0]!.includes("ambassador-tablet"), seen[0]);
        const mine = await laptop.ownDevices();
        const g = mine.devices.find((d) => d.id === ghostId);
        assert.ok(g && !g.expected && !g.self);
        assert.ok(mine.alerts.some((a) => a.device === ghostId && !a.acked && a.kind === "device.add"));
        // The officer revokes it; the laptop sees that too.
        await w.server.store.directory.revokeDevice(ghostId);
        await settled(w);
        assert.ok(alerts(await laptop.sync()).some((t) => t.includes(`(${ghostId}) was revoked`)));
      } finally {
        await w.close();
      }
    });

    test("a listening device reports a device logged for its user without being asked (within a minute)", async () => {
      const { nodeWebSocket } = await import("@valise/client/node/websocket");
      const w = await world(kind, people, { transparency: true });
      let handle: { close(): void } | undefined;
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        await laptop.sync();
        const got = new Promise<string>((resolve) => {
          void laptop
            .listen(
              nodeWebSocket,
              (items) => {
                const a = alerts(items).find((t) => t.includes("d-ghost0device0c"));
                if (a) resolve(a);
              },
              { monitorMs: 100 },
            )
            .then((h) => (handle = h));
        });
        const ghost = await generateDeviceKeys("jnovak" as UserHandle, "d-ghost0device0c" as DeviceId);
        const { enrollmentCode } = await w.server.store.directory.newEnrollmentCode("jnovak");
        await w.server.store.directory.redeemEnrollment(
          enrollmentCode,
          { id: "d-ghost0device0c", name: "night-visitor", signaturePublicKey: ghost.signaturePublicKey },
          [],
          () => {},
        );
        assert.match(await got, /New device added to your account: night-visitor/);
      } finally {
        handle?.close();
        await w.close();
      }
    });

    test("a forked log shown to one device is refused (same size, other root; larger, inconsistent)", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        await a.send("pdvorak", "hello", ASIA);
        await b.sync();
        const size = await settled(w);
        await a.transparency!.refresh(true);
        assert.equal(state(a).checkpoint!.size, size);
        const accepted = state(a).checkpoint!.rootHash;
        const otherRoot = new Uint8Array(32).fill(7);
        w.evil.checkpoint = (note, device) => (device === a.deviceId ? forged(w, size, otherRoot) : note);
        await assert.rejects(a.transparency!.refresh(true), isCode("log_not_verified", /fork — a different root/));
        await b.transparency!.refresh(true); // the other device sees the real log, unaffected
        // The fork grows: a larger tree that does not extend the accepted one.
        await w.enroll("pdvorak", "phone");
        const bigger = await settled(w);
        w.evil.checkpoint = (note, device) => (device === a.deviceId ? forged(w, bigger, otherRoot) : note);
        await assert.rejects(
          a.transparency!.refresh(true),
          isCode("log_not_verified", /fork — size \d+ does not extend/),
        );
        // Meanwhile the device keeps what it accepted and refuses to use the directory.
        assert.equal(state(a).checkpoint!.rootHash, accepted);
        a.verifier.forget();
        await assert.rejects(a.send("pdvorak", "not now", ASIA), /fork/);
        const items = await a.sync();
        assert.ok(
          alerts(items).some((t) => /fork/.test(t)),
          "sync surfaces the refusal as an alert",
        );
      } finally {
        await w.close();
      }
    });

    test("a rolled-back checkpoint is refused", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const a = await w.enroll("jnovak");
        const b = await w.enroll("pdvorak");
        await a.send("pdvorak", "hello", ASIA);
        const size = await settled(w);
        await a.transparency!.refresh(true);
        assert.equal(state(a).checkpoint!.size, size);
        // A genuine older checkpoint, genuinely cosigned back then, replayed.
        const old = await w.server.store.handle.db
          .selectFrom("directory_log_checkpoints")
          .select(["size", "note"])
          .where("size", ">", 0)
          .where("size", "<", size)
          .orderBy("size")
          .executeTakeFirstOrThrow();
        const replay = cosign(
          old.note,
          w.witnesses.map((x) => x.signer),
        );
        w.evil.checkpoint = () => replay;
        await assert.rejects(
          a.transparency!.refresh(true),
          isCode("log_not_verified", new RegExp(`rollback — the server showed size ${old.size}`)),
        );
        assert.equal(state(a).checkpoint!.size, size, "the accepted checkpoint stays");
        a.verifier.forget();
        await assert.rejects(a.send("pdvorak", "y", ASIA), /rollback/);
        void b;
      } finally {
        await w.close();
      }
    });

    test("a checkpoint short of the witness quorum is refused", async () => {
      const w = await world(kind, people, { transparency: true, witnesses: 2, quorum: 2 });
      try {
        const a = await w.enroll("jnovak");
        await w.enroll("pdvorak");
        await settled(w);
        // Witness b refused to cosign (or was never asked): only the log and witness a signed.
        const onlyA = (note: string) =>
          cosign(noteText(note, w.server.logKey!.vkey) + "\n" + logLine(note), [w.witnesses[0]!.signer]);
        w.evil.checkpoint = (note) => onlyA(note);
        await assert.rejects(
          a.transparency!.refresh(true),
          isCode("log_not_verified", /1 of 2 required witness cosignatures/),
        );
        a.verifier.forget();
        await assert.rejects(a.send("pdvorak", "x", ASIA), /1 of 2 required witness cosignatures/);
        // A device enrolling now does not spend its code on a server whose log it cannot verify.
        await assert.rejects(w.enroll("pdvorak", "phone"), isCode("log_not_verified", /enrollment bundle/));
        // Quorum met again: accepted.
        w.evil.checkpoint = undefined;
        await a.transparency!.refresh(true);
      } finally {
        await w.close();
      }
    });

    test("a replayed old directory answer (a revocation missing) is not believed: the log's revocation holds", async () => {
      const w = await world(kind, people, { transparency: true });
      try {
        const laptop = await w.enroll("jnovak", "laptop");
        const phone = await w.enroll("jnovak", "phone");
        const bob = await w.enroll("pdvorak");
        await laptop.send("pdvorak", "before", ASIA);
        await phone.sync();
        await bob.sync();
        const oldAnswer = JSON.stringify(await bob.transport.user("jnovak"));
        await w.server.store.directory.revokeDevice(phone.deviceId);
        await settled(w);
        w.evil.user = (handle, body) => (handle === "jnovak" ? oldAnswer : body);
        const { conversation } = await bob.send("jnovak", "after revocation", ASIA);
        assert.ok(
          !bob
            .conversationMembers(conversation)
            .map((m) => m.device)
            .includes(phone.deviceId),
          "the revoked phone was removed although the server's answer still listed it",
        );
        assert.deepEqual(texts(await laptop.sync()), ["after revocation"]);
        assert.ok(
          alerts(await bob.sync()).some((t) =>
            new RegExp(`the server lists device "${phone.deviceId}" as active, but log entry \\d+ revoked it`).test(t),
          ),
        );
        const v = await bob.verifier.verifyDevice({
          user: "jnovak" as UserHandle,
          device: phone.deviceId as DeviceId,
          signaturePublicKey: Buffer.from(
            (JSON.parse(oldAnswer) as { devices: { id: string; signaturePublicKey: string }[] }).devices.find(
              (d) => d.id === phone.deviceId,
            )!.signaturePublicKey,
            "base64",
          ),
        });
        assert.equal(v.ok, false);
        // The honest answer again: no new alert.
        w.evil.user = undefined;
        bob.verifier.forget();
        await bob.send("jnovak", "again", ASIA);
        assert.deepEqual(texts(await laptop.sync()), ["again"]);
        assert.deepEqual(alerts(await bob.sync()), []);
      } finally {
        await w.close();
      }
    });
  });
}

/** The log's own signature line of a served note (the first line after the blank line). */
function logLine(note: string): string {
  return note.slice(note.lastIndexOf("\n\n") + 2).split("\n")[0]! + "\n";
}
