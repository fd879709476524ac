/** The door: no device enters a group, or is encrypted to, unless the directory verifier accepts it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { addDevices, createGroup, encryptMessage, joinFromWelcome, processMessage, updateKeys } from "../src/index.js";
import { Directory, device, td, te } from "./helpers.js";

void test("addDevices refuses a key package whose device the verifier rejects, before committing", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const ghost = await device("ghost", dir, { enroll: false });
  const g = await createGroup(alice.ctx, te.encode("g"));
  await assert.rejects(addDevices(alice.ctx, g, [bob.kps[0]!.publicBytes, ghost.kps[0]!.publicBytes]), (e: unknown) => {
    assert.equal((e as { code: string }).code, "device_not_verified");
    assert.match((e as Error).message, new RegExp(ghost.keys.device));
    return true;
  });
  // A device enrolled under another key (server swapped the key) is refused too.
  const swapped = await device("bob", dir, { enroll: false });
  dir.enroll({ ...swapped.keys, signaturePublicKey: bob.keys.signaturePublicKey });
  await assert.rejects(addDevices(alice.ctx, g, [swapped.kps[0]!.publicBytes]), { code: "device_not_verified" });
  // The group value is unchanged: adding the honest device still works.
  const ok = await addDevices(alice.ctx, g, [bob.kps[0]!.publicBytes]);
  assert.equal(ok.group.epoch, 1n);
});

void test("processMessage refuses a commit that adds a device our directory does not know", async () => {
  const bobDir = new Directory();
  const aliceDir = new Directory(); // alice's view is compromised: it vouches for the ghost
  const alice = await device("alice", aliceDir);
  const bob = await device("bob", aliceDir);
  const ghost = await device("ghost", aliceDir);
  bobDir.enroll(alice.keys);
  bobDir.enroll(bob.keys);
  const bobCtx = { ...bob.ctx, verifier: bobDir };

  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [bob.kps[0]!.publicBytes]);
  let gb = (await joinFromWelcome(bobCtx, add.welcome!, bob.kps)).group;
  const evil = await addDevices(alice.ctx, add.group, [ghost.kps[0]!.publicBytes]);
  const before = bobDir.calls;
  await assert.rejects(processMessage(bobCtx, gb, evil.commit), { code: "device_not_verified" });
  assert.ok(bobDir.calls > before, "the verifier was asked");

  // Bob's state is untouched: an honest message of the old epoch still decrypts.
  const m = await encryptMessage(alice.ctx, add.group, te.encode("still here"), new Uint8Array());
  const r = await processMessage(bobCtx, gb, m.message);
  assert.ok(r.kind === "application" && td.decode(r.plaintext) === "still here");
  gb = r.group;
  assert.equal(gb.epoch, 1n);
});

void test("processMessage refuses a commit whose sender has been revoked in the directory", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const bobDir = new Directory();
  bobDir.enroll(alice.keys);
  bobDir.enroll(bob.keys);
  const bobCtx = { ...bob.ctx, verifier: bobDir };
  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [bob.kps[0]!.publicBytes]);
  const gb = (await joinFromWelcome(bobCtx, add.welcome!, bob.kps)).group;
  const up = await updateKeys(alice.ctx, add.group);
  bobDir.revoke(alice.keys);
  await assert.rejects(processMessage(bobCtx, gb, up.commit), { code: "device_not_verified" });
  bobDir.enroll(alice.keys);
  const ok = await processMessage(bobCtx, gb, up.commit);
  assert.equal(ok.kind, "commit");
});

void test("joinFromWelcome refuses a group with a member the joiner's directory does not know", async () => {
  const aliceDir = new Directory();
  const alice = await device("alice", aliceDir);
  const ghost = await device("ghost", aliceDir);
  const bob = await device("bob", aliceDir);
  const bobDir = new Directory();
  bobDir.enroll(alice.keys);
  bobDir.enroll(bob.keys);
  const g1 = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [ghost.kps[0]!.publicBytes]);
  const g2 = await addDevices(alice.ctx, g1.group, [bob.kps[0]!.publicBytes]);
  await assert.rejects(joinFromWelcome({ ...bob.ctx, verifier: bobDir }, g2.welcome!, bob.kps), {
    code: "device_not_verified",
  });
  // With the ghost known, the same Welcome is accepted.
  bobDir.enroll(ghost.keys);
  const j = await joinFromWelcome({ ...bob.ctx, verifier: bobDir }, g2.welcome!, bob.kps);
  assert.equal(j.group.epoch, 2n);
});

void test("joinFromWelcome accepts a member revoked since it was added; never encrypts to it; a stranger still fails", async () => {
  const aliceDir = new Directory();
  const alice = await device("alice", aliceDir);
  const phone = await device("bob", aliceDir);
  const bob = await device("bob", aliceDir);
  const g1 = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [
    phone.kps[0]!.publicBytes,
    bob.kps[0]!.publicBytes,
  ]);
  // Bob's desk was offline while his phone was revoked: his directory knows the phone, as revoked.
  const bobDir = new Directory();
  bobDir.enroll(alice.keys);
  bobDir.enroll(bob.keys);
  bobDir.enroll(phone.keys);
  bobDir.markRevoked(phone.keys);
  const bobCtx = { ...bob.ctx, verifier: bobDir };
  const j = await joinFromWelcome(bobCtx, g1.welcome!, bob.kps);
  assert.equal(j.group.epoch, 1n);
  // It reads what the group carries, and refuses to encrypt while the revoked phone is in the tree.
  const m = await encryptMessage(alice.ctx, g1.group, te.encode("to the desk"), new Uint8Array());
  const r = await processMessage(bobCtx, j.group, m.message);
  assert.ok(r.kind === "application" && td.decode(r.plaintext) === "to the desk");
  await assert.rejects(encryptMessage(bobCtx, r.group, te.encode("x"), new Uint8Array()), {
    code: "device_not_verified",
  });
  // The same Welcome to a joiner whose directory never had the phone (a stranger, not a revoked member): refused.
  const strictDir = new Directory();
  strictDir.enroll(alice.keys);
  strictDir.enroll(bob.keys);
  await assert.rejects(joinFromWelcome({ ...bob.ctx, verifier: strictDir }, g1.welcome!, bob.kps), {
    code: "device_not_verified",
  });
  // A commit that adds a revoked device is refused: only a Welcome tolerates members revoked since.
  const carol = await device("carol", aliceDir);
  bobDir.enroll(carol.keys);
  bobDir.markRevoked(carol.keys);
  const addCarol = await addDevices(alice.ctx, g1.group, [carol.kps[0]!.publicBytes]);
  await assert.rejects(processMessage(bobCtx, r.group, addCarol.commit), (e: unknown) => {
    assert.equal((e as { code: string }).code, "device_not_verified");
    assert.match((e as Error).message, new RegExp(carol.keys.device));
    return true;
  });
});

void test("encryptMessage refuses to encrypt to a group holding a device the verifier rejects", async () => {
  const aliceDir = new Directory();
  const alice = await device("alice", aliceDir);
  const ghost = await device("ghost", aliceDir);
  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [ghost.kps[0]!.publicBytes]);
  const strict = new Directory();
  strict.enroll(alice.keys);
  await assert.rejects(
    encryptMessage({ ...alice.ctx, verifier: strict }, add.group, te.encode("x"), new Uint8Array()),
    {
      code: "device_not_verified",
    },
  );
});

void test("a verifier that throws counts as a refusal", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const broken = { verifyDevice: () => Promise.reject(new Error("log unreachable")) };
  const g = await createGroup(alice.ctx, te.encode("g"));
  await assert.rejects(addDevices({ ...alice.ctx, verifier: broken }, g, [bob.kps[0]!.publicBytes]), {
    code: "device_not_verified",
  });
});
