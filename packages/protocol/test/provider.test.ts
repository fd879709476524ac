/** The Node crypto provider agrees with ts-mls's default provider, primitive by primitive and in a mixed group. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { defaultCryptoProvider, getCiphersuiteFromName } from "ts-mls";
import { nodeCryptoProvider } from "../src/node/provider.js";
import {
  addDevices,
  createGroup,
  DEFAULT_CIPHERSUITE,
  encryptMessage,
  externalRejoin,
  joinFromWelcome,
  processMessage,
  removeDevices,
  updateKeys,
} from "../src/index.js";
import type { Group } from "../src/index.js";
import { Directory, device, td, te } from "./helpers.js";

void test("node primitives equal the default provider's (hash, HMAC, HKDF, AES-GCM, Ed25519)", async () => {
  const cs = getCiphersuiteFromName(DEFAULT_CIPHERSUITE);
  const a = await defaultCryptoProvider.getCiphersuiteImpl(cs);
  const b = await nodeCryptoProvider.getCiphersuiteImpl(cs);
  assert.equal(b.kdf.size, a.kdf.size);
  assert.equal(b.hpke.keyLength, a.hpke.keyLength);
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.integer({ min: 1, max: 300 }),
      async (data, key, len) => {
        assert.deepEqual(await b.hash.digest(data), await a.hash.digest(data));
        const k = key.length === 0 ? new Uint8Array(1) : key; // Web Crypto refuses empty HMAC keys
        assert.deepEqual(await b.hash.mac(k, data), await a.hash.mac(k, data));
        assert.equal(await b.hash.verifyMac(k, await a.hash.mac(k, data), data), true);
        // @hpke's HKDF accepts only an empty or HashLen salt (all MLS uses).
        const salt = key.length % 2 === 0 ? new Uint8Array(0) : a.rng.randomBytes(64);
        assert.deepEqual(await b.kdf.extract(salt, data), await a.kdf.extract(salt, data));
        const prk = await a.kdf.extract(salt, data);
        assert.deepEqual(await b.kdf.expand(prk, key, len), await a.kdf.expand(prk, key, len));
        const aesKey = a.rng.randomBytes(32);
        const nonce = a.rng.randomBytes(12);
        const ct = await b.hpke.encryptAead(aesKey, nonce, key, data);
        assert.deepEqual(ct, await a.hpke.encryptAead(aesKey, nonce, key, data));
        assert.deepEqual(await a.hpke.decryptAead(aesKey, nonce, key, ct), data);
        assert.deepEqual(await b.hpke.decryptAead(aesKey, nonce, key, ct), data);
        const bad = ct.slice();
        bad[0]! ^= 1;
        await assert.rejects(b.hpke.decryptAead(aesKey, nonce, key, bad));
        const kp = await a.signature.keygen();
        const sig = await b.signature.sign(kp.signKey, data);
        assert.deepEqual(sig, await a.signature.sign(kp.signKey, data)); // Ed25519 is deterministic
        assert.equal(await a.signature.verify(kp.publicKey, data, sig), true);
        assert.equal(await b.signature.verify(kp.publicKey, data, sig), true);
        sig[3]! ^= 1;
        assert.equal(await b.signature.verify(kp.publicKey, data, sig), false);
      },
    ),
    { numRuns: 40 },
  );
});

void test("a group where one side uses the default provider and the other the Node provider converses", async () => {
  const dir = new Directory();
  const alice = await device("alice", dir); // default (Web Crypto) provider
  const bob = await device("bob", dir, { crypto: nodeCryptoProvider });
  const carol = await device("carol", dir, { crypto: nodeCryptoProvider });
  let ga: Group = await createGroup(alice.ctx, te.encode("mixed"));
  const add = await addDevices(alice.ctx, ga, [bob.kps[0]!.publicBytes]);
  ga = add.group;
  let gb = (await joinFromWelcome(bob.ctx, add.welcome!, bob.kps)).group;

  for (let i = 0; i < 3; i++) {
    const m = await encryptMessage(alice.ctx, ga, te.encode(`a${i}`), te.encode("RESTRICTED"));
    ga = m.group;
    const r = await processMessage(bob.ctx, gb, m.message);
    assert.ok(r.kind === "application" && td.decode(r.plaintext) === `a${i}`);
    gb = r.group;
    const n = await encryptMessage(bob.ctx, gb, te.encode(`b${i}`), te.encode("RESTRICTED"));
    gb = n.group;
    const s = await processMessage(alice.ctx, ga, n.message);
    assert.ok(s.kind === "application" && td.decode(s.plaintext) === `b${i}`);
    ga = s.group;
  }
  // Commits both ways: bob (node) adds carol (node), alice (default) processes; alice updates, bob processes.
  const c = await addDevices(bob.ctx, gb, [carol.kps[0]!.publicBytes]);
  gb = c.group;
  ga = (await processMessage(alice.ctx, ga, c.commit)).group;
  let gc = (await joinFromWelcome(carol.ctx, c.welcome!, carol.kps)).group;
  const u = await updateKeys(alice.ctx, ga);
  ga = u.group;
  gb = (await processMessage(bob.ctx, gb, u.commit)).group;
  gc = (await processMessage(carol.ctx, gc, u.commit)).group;
  const m = await encryptMessage(carol.ctx, gc, te.encode("from carol"), new Uint8Array());
  const ra = await processMessage(alice.ctx, ga, m.message);
  assert.ok(ra.kind === "application" && td.decode(ra.plaintext) === "from carol");
  ga = ra.group;
  // Bob (node) loses state and rejoins externally; alice (default) accepts; carol is removed by alice.
  const rj = await externalRejoin(bob.ctx, u.groupInfo);
  ga = (await processMessage(alice.ctx, ga, rj.commit)).group;
  gb = rj.group;
  const rm = await removeDevices(alice.ctx, ga, [carol.keys.device]);
  ga = rm.group;
  gb = (await processMessage(bob.ctx, gb, rm.commit)).group;
  const last = await encryptMessage(bob.ctx, gb, te.encode("done"), new Uint8Array());
  const rl = await processMessage(alice.ctx, ga, last.message);
  assert.ok(rl.kind === "application" && td.decode(rl.plaintext) === "done");
});
