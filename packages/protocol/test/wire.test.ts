/** Attacker-controlled bytes: tampering, replay, malformed identities and messages (RFC 9420 §6.3, §10). */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parseDeviceId, parseUserHandle, utf8 } from "@valise/core";
import { decodeMlsMessage, encodeMlsMessage } from "ts-mls";
import {
  addDevices,
  createGroup,
  decodeCredentialIdentity,
  decodeGroup,
  encodeGroup,
  encodeCredentialIdentity,
  encryptMessage,
  inspectKeyPackage,
  inspectMlsMessage,
  joinFromWelcome,
  processMessage,
  signChallenge,
  updateKeys,
  verifyChallenge,
} from "../src/index.js";
import { Directory, device, td, te } from "./helpers.js";

async function pair() {
  const dir = new Directory();
  const alice = await device("alice", dir);
  const bob = await device("bob", dir);
  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("wire")), [bob.kps[0]!.publicBytes]);
  const gb = (await joinFromWelcome(bob.ctx, add.welcome!, bob.kps)).group;
  return { alice, bob, ga: add.group, gb, add };
}

function mutatePrivate(bytes: Uint8Array, f: (pm: { authenticatedData: Uint8Array; ciphertext: Uint8Array }) => void) {
  const m = decodeMlsMessage(bytes, 0)![0];
  assert.equal(m.wireformat, "mls_private_message");
  if (m.wireformat !== "mls_private_message") throw new Error("unreachable");
  const pm = {
    ...m.privateMessage,
    authenticatedData: m.privateMessage.authenticatedData.slice(),
    ciphertext: m.privateMessage.ciphertext.slice(),
  };
  f(pm);
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: pm });
}

void test("authenticated data is bound: altering the label in transit fails", async () => {
  const { alice, bob, ga, gb } = await pair();
  const m = await encryptMessage(alice.ctx, ga, te.encode("cable"), te.encode("SECRET/ASIA"));
  const forged = mutatePrivate(m.message, (pm) => {
    pm.authenticatedData = te.encode("UNCLASSIFIED");
  });
  await assert.rejects(processMessage(bob.ctx, gb, forged), { code: "protocol_error" });
  const flipped = mutatePrivate(m.message, (pm) => {
    pm.authenticatedData[0]! ^= 1;
  });
  await assert.rejects(processMessage(bob.ctx, gb, flipped), { code: "protocol_error" });
  // The genuine message still decrypts with the same state (the failures changed nothing).
  const r = await processMessage(bob.ctx, gb, m.message);
  assert.ok(r.kind === "application" && td.decode(r.aad) === "SECRET/ASIA" && td.decode(r.plaintext) === "cable");
});

void test("a tampered ciphertext byte fails", async () => {
  const { alice, bob, ga, gb } = await pair();
  const m = await encryptMessage(alice.ctx, ga, te.encode("x".repeat(1024)), new Uint8Array());
  for (const i of [0, 17, -1]) {
    const bad = mutatePrivate(m.message, (pm) => {
      pm.ciphertext[(pm.ciphertext.length + i) % pm.ciphertext.length]! ^= 0x80;
    });
    await assert.rejects(processMessage(bob.ctx, gb, bad), { code: "protocol_error" });
  }
  // Flipping a byte of the whole encoding anywhere fails too (or does not decode at all).
  for (let i = 0; i < m.message.length; i += 97) {
    const bad = m.message.slice();
    bad[i]! ^= 0x01;
    await assert.rejects(processMessage(bob.ctx, gb, bad));
  }
});

void test("a replayed application message is rejected (its generation's key is gone)", async () => {
  const { alice, bob, ga, gb } = await pair();
  const m = await encryptMessage(alice.ctx, ga, te.encode("once"), new Uint8Array());
  const r = await processMessage(bob.ctx, gb, m.message);
  assert.equal(r.kind, "application");
  await assert.rejects(processMessage(bob.ctx, r.group, m.message), { code: "protocol_error" });
  // Also after a store round-trip.
  await assert.rejects(processMessage(bob.ctx, decodeGroup(encodeGroup(r.group)), m.message), {
    code: "protocol_error",
  });
});

void test("a commit for the wrong epoch or another group is refused", async () => {
  const { alice, bob, ga, gb } = await pair();
  const up1 = await updateKeys(alice.ctx, ga);
  const up2 = await updateKeys(alice.ctx, up1.group);
  await assert.rejects(processMessage(bob.ctx, gb, up2.commit), { code: "protocol_error" });
  const other = await createGroup(bob.ctx, te.encode("other"));
  await assert.rejects(processMessage(bob.ctx, other, up1.commit), { code: "protocol_error" });
});

void test("decodeCredentialIdentity is strict", () => {
  const user = parseUserHandle("alice.m");
  const dev = parseDeviceId("d-abcdefgh1234");
  const id = encodeCredentialIdentity(user, dev);
  assert.equal(td.decode(id), "valise/1\nalice.m\nd-abcdefgh1234");
  assert.deepEqual(decodeCredentialIdentity(id), { user, device: dev });
  for (const bad of [
    "",
    "valise/1\nalice.m",
    "valise/2\nalice.m\nd-abcdefgh1234",
    "valise/1\nAlice\nd-abcdefgh1234",
    "valise/1\nalice.m\nd-abc",
    "valise/1\nalice.m\nd-abcdefgh1234\n",
    "valise/1\nalice.m\nd-abcdefgh1234\nextra",
    " valise/1\nalice.m\nd-abcdefgh1234",
    "valise/1\r\nalice.m\nd-abcdefgh1234",
    "valise/1\nalice.m\u0000\nd-abcdefgh1234",
    `valise/1\n${"a".repeat(65)}\nd-abcdefgh1234`,
  ])
    assert.equal(decodeCredentialIdentity(utf8(bad)), null, JSON.stringify(bad));
  assert.equal(decodeCredentialIdentity(new Uint8Array([0xff, 0xfe, 0x0a])), null);
  assert.equal(decodeCredentialIdentity(new Uint8Array(10_000)), null);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const r = decodeCredentialIdentity(b);
      // Anything accepted is canonical: it re-encodes to the same bytes.
      if (r !== null) assert.deepEqual(encodeCredentialIdentity(r.user, r.device), b);
    }),
  );
});

void test("inspectMlsMessage: right header for real messages, null for random or truncated bytes", async () => {
  const { alice, ga, add } = await pair();
  const m = await encryptMessage(alice.ctx, ga, te.encode("hello"), new Uint8Array());
  const up = await updateKeys(alice.ctx, m.group);
  assert.deepEqual(inspectMlsMessage(m.message), {
    wireformat: "private",
    groupId: te.encode("wire"),
    epoch: 1n,
    contentType: "application",
  });
  // Commits are PublicMessages (the server derives membership changes from them: inspect-commit.ts).
  assert.deepEqual(inspectMlsMessage(up.commit), {
    wireformat: "public",
    groupId: te.encode("wire"),
    epoch: 1n,
    contentType: "commit",
  });
  assert.deepEqual(inspectMlsMessage(add.welcome!), { wireformat: "welcome" });
  assert.deepEqual(inspectMlsMessage(up.groupInfo), {
    wireformat: "group_info",
    groupId: te.encode("wire"),
    epoch: 2n,
  });
  assert.deepEqual(inspectMlsMessage(add.commit), {
    wireformat: "public",
    groupId: te.encode("wire"),
    epoch: 0n,
    contentType: "commit",
  });
  const real = [m.message, up.commit, add.welcome!, up.groupInfo];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4096 }), (b) => {
      const r = inspectMlsMessage(b);
      assert.ok(r === null || typeof r.wireformat === "string");
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.constantFrom(...real), fc.nat(), (msg, k) => {
      const cut = k % msg.length; // strictly shorter
      assert.equal(inspectMlsMessage(msg.subarray(0, cut)), null);
      const extended = new Uint8Array(msg.length + 1);
      extended.set(msg);
      assert.equal(inspectMlsMessage(extended), null); // trailing data
    }),
    { numRuns: 300 },
  );
});

void test("inspectKeyPackage accepts a real upload and rejects corrupted ones", async () => {
  const dir = new Directory();
  const bob = await device("bob", dir, { kps: 1 });
  const kp = bob.kps[0]!;
  const ok = await inspectKeyPackage(kp.publicBytes);
  assert.ok(ok);
  assert.equal(ok.user, bob.keys.user);
  assert.equal(ok.device, bob.keys.device);
  assert.equal(ok.ref, kp.ref);
  assert.deepEqual(ok.signaturePublicKey, bob.keys.signaturePublicKey);
  // Corrupt the KeyPackage signature (the last 64 bytes of the encoding).
  const sig = kp.publicBytes.slice();
  sig[sig.length - 5]! ^= 0x01;
  assert.equal(await inspectKeyPackage(sig), null);
  // Corrupt a byte inside the signed content (the init key).
  const body = kp.publicBytes.slice();
  body[20]! ^= 0x01;
  assert.equal(await inspectKeyPackage(body), null);
  assert.equal(await inspectKeyPackage(kp.publicBytes.subarray(0, 100)), null);
  assert.equal(await inspectKeyPackage(new Uint8Array(0)), null);
  // Not a key package at all: a Welcome.
  const alice = await device("alice", dir);
  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("g")), [kp.publicBytes]);
  assert.equal(await inspectKeyPackage(add.welcome!), null);
});

void test("challenge signatures verify and never throw on garbage", async () => {
  const dir = new Directory();
  const { keys } = await device("carol", dir, { kps: 0 });
  const ch = te.encode("login challenge 123");
  const sig = await signChallenge(keys.signaturePrivateKey, ch);
  assert.equal(await verifyChallenge(keys.signaturePublicKey, ch, sig), true);
  assert.equal(await verifyChallenge(keys.signaturePublicKey, te.encode("other"), sig), false);
  const bad = sig.slice();
  bad[0]! ^= 1;
  assert.equal(await verifyChallenge(keys.signaturePublicKey, ch, bad), false);
  assert.equal(await verifyChallenge(new Uint8Array(31), ch, sig), false);
  assert.equal(await verifyChallenge(new Uint8Array(32).fill(0xff), ch, sig), false);
  assert.equal(await verifyChallenge(keys.signaturePublicKey, ch, new Uint8Array(3)), false);
});
