import assert from "node:assert/strict";
import { test } from "node:test";
import {
  addDevices,
  createGroup,
  decodeGroup,
  encodeGroup,
  encryptMessage,
  externalRejoin,
  groupMembers,
  joinFromWelcome,
  processMessage,
  removeDevices,
  updateKeys,
} from "../src/index.js";
import type { Group } from "../src/index.js";
import type { Device } from "./helpers.js";
import { Directory, device, td, te } from "./helpers.js";

async function send(from: Device, g: Group, text: string, aad = "UNCLASSIFIED") {
  return encryptMessage(from.ctx, g, te.encode(text), te.encode(aad));
}
async function receive(to: Device, g: Group, msg: Uint8Array) {
  const r = await processMessage(to.ctx, g, msg);
  assert.equal(r.kind, "application");
  if (r.kind !== "application") throw new Error("unreachable");
  return r;
}

void test("three devices of two users: create, add, converse, update, remove, encode/decode, external rejoin", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const alice2 = await device("alice", dir);
  const bob = await device("bob", dir);

  let ga = await createGroup(alice.ctx, te.encode("conv-1"));
  assert.equal(ga.epoch, 0n);
  const add = await addDevices(alice.ctx, ga, [alice2.kps[0]!.publicBytes, bob.kps[0]!.publicBytes]);
  assert.deepEqual(add.added, [alice2.keys.device, bob.keys.device]);
  assert.ok(add.welcome);
  ga = add.group;
  assert.equal(ga.epoch, 1n);
  const j2 = await joinFromWelcome(alice2.ctx, add.welcome, alice2.kps);
  assert.equal(j2.usedRef, alice2.kps[0]!.ref);
  const jb = await joinFromWelcome(bob.ctx, add.welcome, bob.kps);
  let ga2 = j2.group;
  let gb = jb.group;
  assert.equal(gb.epoch, 1n);
  assert.deepEqual(
    groupMembers(gb).map((m) => m.device),
    [alice.keys.device, alice2.keys.device, bob.keys.device],
  );

  // Converse.
  const m1 = await send(alice, ga, "hello", "CONFIDENTIAL/ASIA");
  ga = m1.group;
  const r1 = await receive(bob, gb, m1.message);
  gb = r1.group;
  assert.equal(td.decode(r1.plaintext), "hello");
  assert.equal(td.decode(r1.aad), "CONFIDENTIAL/ASIA");
  assert.equal(r1.sender.device, alice.keys.device);
  assert.equal(r1.sender.user, alice.keys.user);
  const r1b = await receive(alice2, ga2, m1.message);
  ga2 = r1b.group;

  // State encode/decode mid-conversation (bob), then continue.
  gb = decodeGroup(encodeGroup(gb));
  const m2 = await send(bob, gb, "hi alice");
  gb = m2.group;
  ga = (await receive(alice, ga, m2.message)).group;
  ga2 = (await receive(alice2, ga2, m2.message)).group;

  // Update keys (PCS) by bob.
  const up = await updateKeys(bob.ctx, gb);
  gb = up.group;
  assert.equal(up.welcome, undefined);
  const pa = await processMessage(alice.ctx, ga, up.commit);
  assert.equal(pa.kind, "commit");
  if (pa.kind !== "commit") throw new Error("unreachable");
  assert.equal(pa.sender?.device, bob.keys.device);
  ga = pa.group;
  ga2 = (await processMessage(alice2.ctx, ga2, up.commit)).group;
  assert.equal(ga.epoch, 2n);

  // Remove alice2: she learns she is removed and cannot read later messages.
  const rm = await removeDevices(alice.ctx, ga, [alice2.keys.device]);
  assert.deepEqual(rm.removed, [alice2.keys.device]);
  ga = rm.group;
  const pb = await processMessage(bob.ctx, gb, rm.commit);
  assert.ok(pb.kind === "commit" && pb.removed[0] === alice2.keys.device && !pb.removedSelf);
  gb = pb.group;
  const p2 = await processMessage(alice2.ctx, ga2, rm.commit);
  assert.ok(p2.kind === "commit" && p2.removedSelf);
  const m3 = await send(alice, ga, "after removal");
  ga = m3.group;
  gb = (await receive(bob, gb, m3.message)).group;
  await assert.rejects(processMessage(alice2.ctx, p2.group, m3.message), { code: "protocol_error" });
  await assert.rejects(processMessage(alice2.ctx, ga2, m3.message), { code: "protocol_error" });
  assert.deepEqual(
    groupMembers(ga).map((m) => m.device),
    [alice.keys.device, bob.keys.device],
  );

  // Bob loses his state and rejoins from the latest GroupInfo (resync removes his old leaf).
  const rj = await externalRejoin(bob.ctx, rm.groupInfo);
  const pr = await processMessage(alice.ctx, ga, rj.commit);
  assert.ok(pr.kind === "commit");
  assert.equal(pr.sender?.device, bob.keys.device);
  ga = pr.group;
  gb = rj.group;
  assert.equal(groupMembers(ga).length, 2);
  const m4 = await send(bob, gb, "back again");
  gb = m4.group;
  assert.equal(td.decode((await receive(alice, ga, m4.message)).plaintext), "back again");
  const m5 = await send(alice, ga, "welcome back");
  assert.equal(td.decode((await receive(bob, gb, m5.message)).plaintext), "welcome back");
});

void test("a revoked device is removed from a group loaded fresh (a new process): the removal never asks the door about the removed member", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const carol = await device("carol", dir);
  const ga0 = await createGroup(alice.ctx, te.encode("conv-revoke"));
  const add = await addDevices(alice.ctx, ga0, [bob.kps[0]!.publicBytes, carol.kps[0]!.publicBytes]);
  // A fresh process: the group is decoded from the profile, so no tree is cached as verified.
  const stored = encodeGroup(add.group);
  dir.revoke(bob.keys);
  const fresh = decodeGroup(stored);
  const rm = await removeDevices(alice.ctx, fresh, [bob.keys.device]);
  assert.deepEqual(rm.removed, [bob.keys.device]);
  assert.deepEqual(
    groupMembers(rm.group).map((m) => m.device),
    [alice.keys.device, carol.keys.device],
  );
  // Everyone who stays still passes the door: a refused remaining member still blocks the commit.
  dir.revoke(carol.keys);
  await assert.rejects(removeDevices(alice.ctx, decodeGroup(stored), [bob.keys.device]), {
    code: "device_not_verified",
  });
  // And the next message encrypts without asking about the removed device.
  dir.enroll(carol.keys);
  const m = await encryptMessage(alice.ctx, decodeGroup(encodeGroup(rm.group)), te.encode("after"), te.encode("U"));
  assert.ok(m.message.length > 0);
});
