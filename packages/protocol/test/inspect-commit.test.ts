/**
 * The server's view of a commit (issue 13 finding 6): membership changes derived from what it can verify in a
 * PublicMessage commit and the GroupInfos, never from the committer's word. Attacks: forged sender, a GroupInfo that
 * does not belong to the commit, a GroupInfo whose tree moves members between leaves, proposals by reference.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeMlsMessage, encodeMlsMessage } from "ts-mls";
import {
  addDevices,
  createGroup,
  inspectCommit,
  joinFromWelcome,
  processMessage,
  removeDevices,
  updateKeys,
} from "../src/index.js";
import { Directory, device, te } from "./helpers.js";
import { ratchetTreeFromExtension, signGroupInfo } from "ts-mls/groupInfo.js";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import { suiteImpl } from "../src/ciphersuite.js";

async function setup() {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const mallory = await device("mallory", dir);
  const g0 = await createGroup(alice.ctx, te.encode("c-conv000001"));
  const add = await addDevices(alice.ctx, g0, [bob.kps[0]!.publicBytes, mallory.kps[0]!.publicBytes]);
  const gb = (await joinFromWelcome(bob.ctx, add.welcome!, bob.kps)).group;
  const gm = (await joinFromWelcome(mallory.ctx, add.welcome!, mallory.kps)).group;
  return { alice, bob, mallory, add, ga: add.group, gb, gm };
}

void test("commits are PublicMessages; the server derives added/removed and members still process them", async () => {
  const { alice, bob, mallory, add, gb, gm } = await setup();
  assert.equal(decodeMlsMessage(add.commit, 0)![0].wireformat, "mls_public_message");
  // Epoch 0: no stored GroupInfo; the creator's first commit.
  const first = await inspectCommit(add.commit, null, add.groupInfo);
  assert.ok(first.ok, first.ok ? "" : first.reason);
  assert.equal(first.sender.device, alice.keys.device);
  assert.deepEqual(first.added.map((a) => a.device).sort(), [bob.keys.device, mallory.keys.device].sort());
  assert.deepEqual(first.removed, []);

  // Mallory's empty commit removes nobody, whatever she claims next to it.
  const upd = await updateKeys(mallory.ctx, gm);
  const u = await inspectCommit(upd.commit, add.groupInfo, upd.groupInfo);
  assert.ok(u.ok, u.ok ? "" : u.reason);
  assert.equal(u.sender.device, mallory.keys.device);
  assert.deepEqual(u.added, []);
  assert.deepEqual(u.removed, []);
  // A real Remove is seen as one, and the other members process the PublicMessage commit.
  const rm = await removeDevices(mallory.ctx, gm, [bob.keys.device]);
  const r = await inspectCommit(rm.commit, add.groupInfo, rm.groupInfo);
  assert.ok(r.ok, r.ok ? "" : r.reason);
  assert.deepEqual(r.removed, [bob.keys.device]);
  const seen = await processMessage(bob.ctx, gb, upd.commit);
  assert.equal(seen.kind, "commit");
  const ga2 = await processMessage(alice.ctx, add.group, rm.commit);
  assert.ok(ga2.kind === "commit" && ga2.removed.includes(bob.keys.device));
});

void test("forged commits and group infos are refused", async () => {
  const { alice, mallory, add, ga, gm } = await setup();
  const upd = await updateKeys(mallory.ctx, gm);
  // 1. Sender forged: mallory's commit relabelled as coming from alice's leaf (0): the signature does not verify.
  const msg = decodeMlsMessage(upd.commit, 0)![0];
  assert.ok(msg.wireformat === "mls_public_message" && msg.publicMessage.content.sender.senderType === "member");
  const forged = structuredClone(msg);
  if (forged.wireformat === "mls_public_message" && forged.publicMessage.content.sender.senderType === "member")
    forged.publicMessage.content.sender.leafIndex = 0;
  const f1 = await inspectCommit(encodeMlsMessage(forged), add.groupInfo, upd.groupInfo);
  assert.equal(f1.ok, false);
  assert.match(f1.ok ? "" : f1.reason, /signature does not verify/);
  // 2. A GroupInfo that belongs to another commit (alice's) next to mallory's commit: transcript/tag mismatch.
  const other = await updateKeys(alice.ctx, ga);
  const f2 = await inspectCommit(upd.commit, add.groupInfo, other.groupInfo);
  assert.equal(f2.ok, false);
  assert.match(f2.ok ? "" : f2.reason, /confirmation tag|transcript/);
  // 3. A stale stored GroupInfo (epoch 1 commit checked against the epoch-2 state).
  const f3 = await inspectCommit(upd.commit, upd.groupInfo, upd.groupInfo);
  assert.equal(f3.ok, false);
  // 4. Garbage.
  for (const bad of [new Uint8Array([0, 1, 0, 2]), new Uint8Array(0), upd.groupInfo, add.welcome!]) {
    const f = await inspectCommit(bad, add.groupInfo, upd.groupInfo);
    assert.equal(f.ok, false);
  }
  const f5 = await inspectCommit(upd.commit, add.groupInfo, new Uint8Array([1, 2, 3]));
  assert.equal(f5.ok, false);
  // 5. The creator-only epoch 0 rule: a Remove at epoch 0 is impossible, another group's commit is refused.
  const f6 = await inspectCommit(upd.commit, null, upd.groupInfo);
  assert.equal(f6.ok, false);
});

void test("a committer's GroupInfo that moves members between leaves is refused (tree bound to the stored one)", async () => {
  const { mallory, add, gm } = await setup();
  const upd = await updateKeys(mallory.ctx, gm);
  const ok = await inspectCommit(upd.commit, add.groupInfo, upd.groupInfo);
  assert.ok(ok.ok);
  const m = decodeMlsMessage(upd.groupInfo, 0)![0];
  assert.ok(m.wireformat === "mls_group_info");
  const gi = m.groupInfo;
  const tree = ratchetTreeFromExtension(gi)!;
  // Swap alice's (leaf 0) and bob's (leaf 1) leaves: a later Remove(leaf 0) would then be booked against bob.
  [tree[0], tree[2]] = [tree[2], tree[0]];
  const cs = await suiteImpl();
  const extensions = gi.extensions.map((e) =>
    e.extensionType === "ratchet_tree" ? { ...e, extensionData: encodeRatchetTree(tree) } : e,
  );
  const tbs = {
    groupContext: { ...gi.groupContext, treeHash: await treeHashRoot(tree, cs.hash) },
    extensions,
    confirmationTag: gi.confirmationTag,
    signer: gi.signer,
  };
  const signed = await signGroupInfo(tbs, mallory.keys.signaturePrivateKey, cs.signature);
  const forged = encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: signed });
  const r = await inspectCommit(upd.commit, add.groupInfo, forged);
  assert.equal(r.ok, false);
  assert.match(r.ok ? "" : r.reason, /changed the member at leaf 0|transcript/);
});
