/**
 * processApplications (catch-up): the same plaintexts, senders and group state as processMessage one by one, with
 * the signatures checked concurrently — and nothing from a message whose signature fails, nor after it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultCryptoProvider } from "ts-mls";
import type { CryptoProvider } from "ts-mls";
import { nodeCryptoProvider } from "../src/node/provider.js";
import {
  addDevices,
  createGroup,
  encodeGroup,
  encryptMessage,
  joinFromWelcome,
  processApplications,
  processMessage,
  updateKeys,
} from "../src/index.js";
import type { Group } from "../src/index.js";
import type { Device } from "./helpers.js";
import { Directory, device, td, te } from "./helpers.js";

/** A provider whose signatures are wrong (one bit flipped): a member's bug, or an insider forging a message. */
function badSigner(base: CryptoProvider): CryptoProvider {
  return {
    async getCiphersuiteImpl(c) {
      const impl = await base.getCiphersuiteImpl(c);
      return {
        ...impl,
        signature: {
          ...impl.signature,
          async sign(k, m) {
            const s = Uint8Array.from(await impl.signature.sign(k, m));
            s[0]! ^= 1;
            return s;
          },
        },
      };
    },
  };
}

async function pair(crypto: CryptoProvider) {
  const dir = new Directory();
  const alice = await device("alice", dir, { crypto });
  const bob = await device("bob", dir, { crypto });
  const add = await addDevices(alice.ctx, await createGroup(alice.ctx, te.encode("c")), [bob.kps[0]!.publicBytes]);
  const gb = (await joinFromWelcome(bob.ctx, add.welcome!, bob.kps)).group;
  return { alice, bob, ga: add.group, gb };
}

async function sendAll(from: Device, g0: Group, texts: string[], forge = new Set<number>()) {
  let g = g0;
  const out: Uint8Array[] = [];
  const forger = { ...from.ctx, crypto: badSigner(from.ctx.crypto ?? defaultCryptoProvider) };
  for (const [i, t] of texts.entries()) {
    const r = await encryptMessage(forge.has(i) ? forger : from.ctx, g, te.encode(t), te.encode("UNCLASSIFIED"));
    g = r.group;
    out.push(r.message);
  }
  return { group: g, messages: out };
}

/** processMessage one at a time, skipping (as the client does) the ones it refuses. */
async function sequential(to: Device, g0: Group, msgs: Uint8Array[]) {
  let g = g0;
  const texts: string[] = [];
  const refused: number[] = [];
  for (const [i, m] of msgs.entries()) {
    try {
      const r = await processMessage(to.ctx, g, m);
      assert.equal(r.kind, "application");
      if (r.kind !== "application") throw new Error("unreachable");
      g = r.group;
      texts.push(td.decode(r.plaintext));
    } catch {
      refused.push(i);
    }
  }
  return { group: g, texts, refused };
}

const texts = (n: number, p = "m") => Array.from({ length: n }, (_, i) => `${p}${i}`);

for (const [name, crypto] of [
  ["node provider (signatures in the thread pool)", nodeCryptoProvider],
  ["ts-mls default provider", defaultCryptoProvider],
] as const)
  describe(`processApplications, ${name}`, () => {
    test("a run of messages: the same plaintexts, senders and group state as one by one", async () => {
      const { alice, bob, ga, gb } = await pair(crypto);
      const sent = await sendAll(alice, ga, texts(25));
      const batch = await processApplications(bob.ctx, gb, sent.messages);
      assert.deepEqual(
        batch.results.map((r) => td.decode(r.plaintext)),
        texts(25),
      );
      assert.ok(
        batch.results.every((r) => r.sender.device === alice.keys.device && td.decode(r.aad) === "UNCLASSIFIED"),
      );
      const seq = await sequential(bob, gb, sent.messages);
      assert.deepEqual(encodeGroup(batch.group), encodeGroup(seq.group));
      // The keys are used: the same run again yields nothing (a replay).
      assert.equal((await processApplications(bob.ctx, batch.group, sent.messages)).results.length, 0);
    });

    test("a bad signature mid-run: nothing from it or after it; the state is the one before it", async () => {
      const { alice, bob, ga, gb } = await pair(crypto);
      const sent = await sendAll(alice, ga, texts(20), new Set([12]));
      const first = await processApplications(bob.ctx, gb, sent.messages);
      assert.deepEqual(
        first.results.map((r) => td.decode(r.plaintext)),
        texts(12),
      );
      const before12 = await sequential(bob, gb, sent.messages.slice(0, 12));
      assert.deepEqual(encodeGroup(first.group), encodeGroup(before12.group));
      // The caller's processMessage refuses message 12 and says why; then the rest goes on as one by one would.
      await assert.rejects(processMessage(bob.ctx, first.group, sent.messages[12]!), /[Ss]ignature/);
      const rest = await processApplications(bob.ctx, first.group, sent.messages.slice(13));
      assert.deepEqual(
        rest.results.map((r) => td.decode(r.plaintext)),
        texts(20).slice(13),
      );
      const seq = await sequential(bob, gb, sent.messages);
      assert.deepEqual(seq.refused, [12]);
      assert.deepEqual(encodeGroup(rest.group), encodeGroup(seq.group));
    });

    test("a bad signature first: no result, the group unchanged", async () => {
      const { alice, bob, ga, gb } = await pair(crypto);
      const sent = await sendAll(alice, ga, texts(3), new Set([0]));
      const b = await processApplications(bob.ctx, gb, sent.messages);
      assert.equal(b.results.length, 0);
      assert.equal(b.group, gb);
    });

    test("the run stops at a replay, a commit, another group's message and bytes that are not MLS", async () => {
      const { alice, bob, ga, gb } = await pair(crypto);
      const sent = await sendAll(alice, ga, texts(3));
      const replay = await processApplications(bob.ctx, gb, [sent.messages[0]!, sent.messages[0]!, sent.messages[1]!]);
      assert.equal(replay.results.length, 1);

      const commit = await updateKeys(alice.ctx, sent.group);
      const after = await sendAll(alice, commit.group, ["after"]);
      const c = await processApplications(bob.ctx, gb, [...sent.messages, commit.commit, ...after.messages]);
      assert.equal(c.results.length, 3);

      const other = await pair(crypto);
      const foreign = await sendAll(other.alice, other.ga, ["elsewhere"]);
      const f = await processApplications(bob.ctx, gb, [sent.messages[0]!, foreign.messages[0]!]);
      assert.equal(f.results.length, 1);

      const junk = await processApplications(bob.ctx, gb, [te.encode("not mls"), sent.messages[0]!]);
      assert.equal(junk.results.length, 0);
      assert.equal(junk.group, gb);
    });
  });
