/**
 * Catch-up decrypts runs of application messages ahead with their signatures checked concurrently
 * (protocol processApplications, client syncConversation). Through a real server on 127.0.0.1: a member's message
 * with a bad signature and a message the server replays in place of another are refused and named, every other
 * message arrives once and in order, and the conversation goes on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { getCryptoProvider, setCryptoProvider } from "@valise/protocol";
import { tamperingFetch, world, texts } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
];

type CryptoProvider = ReturnType<typeof getCryptoProvider>;

/** Signs with one bit flipped: what a member's broken or forging device sends. */
function badSigner(base: CryptoProvider): CryptoProvider {
  return {
    async getCiphersuiteImpl(c) {
      const impl = await base.getCiphersuiteImpl(c);
      const sign = impl.signature.sign.bind(impl.signature);
      return {
        ...impl,
        signature: {
          ...impl.signature,
          async sign(k, m) {
            const s = Uint8Array.from(await sign(k, m));
            s[0]! ^= 1;
            return s;
          },
        },
      };
    },
  };
}

test(
  "catch-up of a run: a bad signature and a replay refused and named, the rest once and in order",
  { timeout: 120_000 },
  async () => {
    const w = await world("sqlite", people);
    try {
      const alice = await w.enroll("jnovak");
      const t = tamperingFetch();
      const bob = await w.enroll("pdvorak", "laptop", t.fetch);
      const sent: { text: string; seq: number }[] = [];
      let id = "";
      const good = getCryptoProvider();
      for (let i = 1; i <= 40; i++) {
        if (i === 17) setCryptoProvider(badSigner(good));
        try {
          const r = await alice.send("pdvorak", `m${i}`, ASIA);
          id = r.conversation;
          sent.push({ text: `m${i}`, seq: r.seq });
        } finally {
          setCryptoProvider(good);
        }
      }
      // The server hands bob m10's ciphertext again in place of m30.
      const m10 = sent[9]!.seq;
      let m10payload = "";
      t.rules.push({ conversation: id, seq: m10, payload: (p) => (m10payload = p) });
      t.rules.push({ conversation: id, seq: sent[29]!.seq, payload: () => m10payload });

      const items = await bob.sync();
      const want = sent.filter((_, i) => i !== 16 && i !== 29).map((s) => s.text);
      assert.deepEqual(texts(items), want);
      const alerts = items.filter((i) => i.type === "alert").map((i) => i.text);
      assert.ok(
        alerts.some((a) => a.includes(`refused message ${sent[16]!.seq}`) && /[Ss]ignature/.test(a)),
        alerts.join("\n"),
      );
      assert.ok(
        alerts.some((a) => a.includes(`refused message ${sent[29]!.seq}`)),
        alerts.join("\n"),
      );
      assert.equal(alerts.length, 2, alerts.join("\n"));
      assert.deepEqual(texts(await bob.sync()), [], "nothing twice");

      await alice.send("pdvorak", "after", ASIA);
      assert.deepEqual(texts(await bob.sync()), ["after"]);
    } finally {
      await w.close();
    }
  },
);
