/**
 * Delivered/read receipts (issue 15 item 2, client/src/receipts.ts) through a real server on 127.0.0.1: a receipt
 * travels inside the conversation's MLS group, one per conversation per sync or view, never one for a receipt; the
 * sender's state goes sent → delivered → read, counted per user and device. Against attackers: a member's receipt
 * for messages that are not the receiver's own, or for a message after the receipt, counts for nothing; a receipt
 * another group's member made, replayed by the server, is refused; crafted receipt payloads (huge, unknown fields,
 * __proto__) are refused by the parser; a message the reader's device could not decrypt is never reported read.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePayload, ValiseClient, type AppPayload, type MessageState } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { tamperingFetch, world, texts } from "./helpers.js";
import { runCli, startServeProcess } from "./cli-process.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
  { handle: "mcerny", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
];
const enc = (s: string) => new TextEncoder().encode(s);

const head = async (c: ValiseClient, id: string) =>
  (await c.transport.conversations()).find((x) => x.id === id)!.headSeq;
const states = (c: ValiseClient, id: string) =>
  Object.fromEntries(c.receipts.states(id).map((s: MessageState) => [s.seq, s.state]));

describe("receipts", { timeout: 120_000 }, () => {
  test("1:1: delivered after the peer's sync, read once shown; one receipt per conversation per sync or view", async () => {
    const w = await world("sqlite", people);
    try {
      const alice = await w.enroll("jnovak");
      const bob = await w.enroll("pdvorak");
      bob.receipts.sending = true;
      alice.receipts.sending = true;
      const events: { conversation: string; seqs: number[] }[] = [];
      alice.receipts.onReceipts = (e) => events.push(e);
      const { conversation: id } = await alice.send("pdvorak", "one", ASIA);
      await alice.send("pdvorak", "two", ASIA);
      await alice.send("pdvorak", "three", ASIA);
      const mine = alice.receipts.states(id).map((s) => s.seq);
      assert.equal(mine.length, 3);
      assert.deepEqual(
        alice.receipts.states(id).map((s) => s.state),
        ["sent", "sent", "sent"],
      );

      let before = await head(bob, id);
      assert.deepEqual(texts(await bob.sync()), ["one", "two", "three"]);
      assert.equal((await head(bob, id)) - before, 1, "one delivered receipt for the three messages");

      before = await head(alice, id);
      assert.deepEqual(texts(await alice.sync()), [], "a receipt is not a message");
      assert.equal(await head(alice, id), before, "no receipt for a receipt");
      assert.deepEqual(events, [{ conversation: id, seqs: mine }]);
      for (const s of alice.receipts.states(id)) {
        assert.equal(s.state, "delivered");
        assert.deepEqual(s.deliveredTo, ["pdvorak"]);
        assert.deepEqual(s.readBy, []);
        assert.deepEqual(
          s.devices.map((d) => [d.user, d.device, d.state]),
          [["pdvorak", bob.deviceId, "delivered"]],
        );
      }

      before = await head(bob, id);
      assert.equal(await bob.receipts.markRead(id), 3);
      assert.equal(await bob.receipts.markRead(id), 0, "already acknowledged: nothing sent twice");
      await bob.sync();
      assert.equal((await head(bob, id)) - before, 1, "one read receipt for the view");
      await alice.sync();
      assert.deepEqual(
        alice.receipts.states(id).map((s) => [s.state, s.readBy]),
        [
          ["read", ["pdvorak"]],
          ["read", ["pdvorak"]],
          ["read", ["pdvorak"]],
        ],
      );
      // A late "delivered" never lowers "read"; bob's own message is not alice's to track.
      const reply = await bob.send("jnovak", "four", ASIA);
      assert.equal(alice.receipts.state(id, reply.seq), null);
      assert.equal(bob.receipts.state(id, reply.seq)?.state, "sent");
      await alice.sync(); // decrypts "four": a delivered receipt
      await bob.sync();
      assert.equal(bob.receipts.state(id, reply.seq)?.state, "delivered");
      assert.equal(alice.receipts.state(id, mine[0]!)?.state, "read");
    } finally {
      await w.close();
    }
  });

  test("unit channel: per-user counts; attackers' receipts count for nothing", async () => {
    const w = await world("sqlite", people);
    try {
      const t = tamperingFetch();
      const alice = await w.enroll("jnovak", "laptop", t.fetch);
      const alicePhone = await w.enroll("jnovak", "phone");
      const bobLaptop = await w.enroll("pdvorak", "laptop");
      const bobPhone = await w.enroll("pdvorak", "phone");
      const carol = await w.enroll("mcerny");
      for (const c of [alicePhone, bobLaptop, bobPhone, carol]) c.receipts.sending = true;
      const { conversation: id, seq: s1 } = await alice.send("EMB/BEIJING", "to the unit", ASIA);
      for (const c of [alicePhone, bobLaptop, bobPhone, carol]) await c.sync();
      await alice.sync();
      let st = alice.receipts.state(id, s1)!;
      assert.equal(st.state, "delivered");
      assert.deepEqual(st.deliveredTo, ["mcerny", "pdvorak"], "own devices do not count");
      assert.equal(st.devices.length, 3);

      await bobLaptop.receipts.markRead(id);
      await bobPhone.receipts.markRead(id);
      await alicePhone.receipts.markRead(id); // alice's own phone: not a reader
      await alice.sync();
      st = alice.receipts.state(id, s1)!;
      assert.equal(st.state, "read");
      assert.deepEqual(st.readBy, ["pdvorak"], "Read by 1: two devices of one user count once");

      // carol, a member, acknowledges bob's message and messages after her receipt: alice tracks neither.
      const bobMsg = await bobLaptop.send("EMB/BEIJING", "from bob", ASIA);
      assert.equal(bobMsg.conversation, id);
      await carol.sync();
      const next = (await head(carol, id)) + 1;
      const send = (c: ValiseClient, p: unknown) => c.sendPayload(id, p as AppPayload);
      await send(carol, { t: "receipt", state: "read", seqs: [bobMsg.seq, next, next + 1, next + 2] });
      // Sent without catching up first: carol's receipt is processed after alice's message exists.
      const s2 = (await alice.sendText(id, "after carol's receipt")).seq;
      assert.ok(s2 > next && s2 <= next + 2, `alice's message ${s2} is one carol named in advance`);
      // A receipt alice's own other device made: not counted either.
      await send(alicePhone, { t: "receipt", state: "read", seqs: [s2] });
      // Crafted payloads from a member: refused by the parser, named in an alert, nothing polluted.
      const hostile = [
        '{"t":"receipt","state":"read","seqs":[' + Array.from({ length: 1001 }, (_, i) => i + 1).join() + "]}",
        `{"t":"receipt","state":"read","seqs":[${s2}],"extra":1}`,
        `{"t":"receipt","state":"read","seqs":[${s2}],"__proto__":{"polluted":"yes"}}`,
        `{"t":"receipt","state":"seen","seqs":[${s2}]}`,
        `{"t":"receipt","state":"read","seqs":[${s2},${s2}]}`,
        `{"t":"receipt","state":"read","seqs":[-1, 0.5]}`,
      ];
      for (const h of hostile) await send(carol, JSON.parse(h));
      // The server replays into the unit channel a receipt carol made in another group (her direct conversation
      // with alice): alice cannot process it, so it counts for nothing.
      const direct = await carol.send("jnovak", "hello", ASIA);
      await carol.sendPayload(direct.conversation, { t: "receipt", state: "read", seqs: [s2] });
      const foreign = (await carol.transport.messages(direct.conversation, direct.seq)).at(-1)!;
      const slot = (await send(carol, { t: "text", text: "placeholder" })).seq;
      t.rules.push({ conversation: id, seq: slot, payload: () => Buffer.from(foreign.payload).toString("base64") });

      const items = await alice.sync();
      const alerts = items.filter((i) => i.type === "alert").map((i) => i.text);
      assert.equal(
        alerts.filter((a) => /malformed payload from mcerny/.test(a)).length,
        hostile.length,
        alerts.join("\n"),
      );
      assert.ok(
        alerts.some((a) => a.includes(`refused message ${slot}`)),
        alerts.join("\n"),
      );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(alice.receipts.state(id, bobMsg.seq), null, "not alice's message: ignored");
      st = alice.receipts.state(id, s2)!;
      assert.equal(st.state, "sent", JSON.stringify(st));
      assert.deepEqual(st.devices, []);
      // bob tracks his own message; carol's receipt for it counts there.
      await bobLaptop.sync();
      assert.deepEqual(bobLaptop.receipts.state(id, bobMsg.seq)?.readBy, ["mcerny"]);
    } finally {
      await w.close();
    }
  });

  test("a message the reader's device could not decrypt is never reported delivered or read", async () => {
    const w = await world("sqlite", people);
    try {
      const alice = await w.enroll("jnovak");
      const t = tamperingFetch();
      const bob = await w.enroll("pdvorak", "laptop", t.fetch);
      bob.receipts.sending = true;
      const { conversation: id, seq: s1 } = await alice.send("pdvorak", "m1", ASIA);
      const s2 = (await alice.send("pdvorak", "m2", ASIA)).seq;
      const s3 = (await alice.send("pdvorak", "m3", ASIA)).seq;
      // On its way to bob, m2's ciphertext is altered: his device cannot decrypt it.
      t.rules.push({
        conversation: id,
        seq: s2,
        payload: (old) => {
          const b = Buffer.from(old, "base64");
          b[b.length - 5]! ^= 1;
          return b.toString("base64");
        },
      });
      const items = await bob.sync();
      assert.deepEqual(texts(items), ["m1", "m3"]);
      assert.ok(items.some((i) => i.type === "alert" && i.text.includes(`refused message ${s2}`)));
      assert.equal(await bob.receipts.markRead(id), 2);
      await alice.sync();
      assert.deepEqual(states(alice, id), { [s1]: "read", [s2]: "sent", [s3]: "read" });
    } finally {
      await w.close();
    }
  });
});

test("the receipt parser refuses crafted payloads", () => {
  const ok = parsePayload(enc('{"t":"receipt","state":"delivered","seqs":[1,2,3]}'));
  assert.deepEqual(ok, { t: "receipt", state: "delivered", seqs: [1, 2, 3] });
  for (const bad of [
    '{"t":"receipt","state":"read","seqs":[' + Array.from({ length: 1001 }, (_, i) => i + 1).join() + "]}",
    '{"t":"receipt","state":"read","seqs":[1],"upTo":9}',
    '{"t":"receipt","state":"read","seqs":[1],"__proto__":{"polluted":1}}',
    '{"t":"receipt","state":"read"}',
    '{"t":"receipt","state":"read","seqs":"1"}',
    '{"t":"receipt","state":"read","seqs":[0]}',
    '{"t":"receipt","state":"read","seqs":[1e300]}',
    '{"t":"receipt","state":"read","seqs":[[1]]}',
    '{"t":"receipt","state":"received","seqs":[1]}',
    '{"t":"receipt","state":"read","seqs":[2,2]}',
  ])
    assert.throws(
      () => parsePayload(enc(bad)),
      (e: unknown) => (e as { code?: string }).code === "protocol_error",
      bad.slice(0, 80),
    );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test(
  "valise history shows the delivered/read state of one's own messages (CLI processes)",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "valise-receipts-cli-"));
    const data = join(dir, "data");
    const server = await startServeProcess(data);
    try {
      const profile = (h: string) => join(dir, h);
      const json = async (args: string[]) =>
        JSON.parse((await runCli([...args, "--json"])).stdout) as Record<string, unknown>;
      await runCli(["admin", "--data", data, "unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA"]);
      for (const h of ["jnovak", "pdvorak"]) {
        const add = await json([
          "admin",
          "--data",
          data,
          "user",
          "add",
          h,
          "--unit",
          "EMB/BEIJING",
          "--clearance",
          ASIA,
        ]);
        await runCli(["enroll", "--server", server.url, "--bundle", JSON.stringify(add), "--profile", profile(h)]);
      }
      const sent = await json([
        "send",
        "--profile",
        profile("jnovak"),
        "--to",
        "pdvorak",
        "--label",
        ASIA,
        "from the CLI",
      ]);
      const conversation = sent.conversation as string;
      const history = async () =>
        (
          (await json(["history", conversation, "--profile", profile("jnovak")])).messages as Record<string, unknown>[]
        )[0]!;
      assert.deepEqual((await history()).receipt, { state: "sent", deliveredTo: [], readBy: [] });
      // pdvorak reads it in an app that sends receipts (the SDK on his profile, as the web app runs it).
      const bob = await ValiseClient.open({ store: new FileKeyStore(profile("pdvorak")), receipts: true });
      assert.deepEqual(texts(await bob.sync()), ["from the CLI"]);
      await runCli(["sync", "--profile", profile("jnovak")]);
      assert.deepEqual((await history()).receipt, { state: "delivered", deliveredTo: ["pdvorak"], readBy: [] });
      assert.equal(await bob.receipts.markRead(conversation), 1);
      await runCli(["sync", "--profile", profile("jnovak")]);
      assert.deepEqual((await history()).receipt, { state: "read", deliveredTo: ["pdvorak"], readBy: ["pdvorak"] });
      const human = (await runCli(["history", conversation, "--profile", profile("jnovak")])).stdout;
      assert.match(human, /jnovak: from the CLI {2}\(read by pdvorak\)$/m);
    } finally {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
