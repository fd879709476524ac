/**
 * Crash safety of delivery (DESIGN §3, §4 "nothing acknowledged is ever lost, not on kill -9"):
 * a real `valise serve` child process on SQLite gets a concurrent burst of application messages, is SIGKILLed after
 * about half of them were acknowledged, restarts on the same data directory, and the senders retry everything not yet
 * acknowledged with the same idempotency key. The receiver then must see every message exactly once, in the order the
 * server acknowledged, with gapless sequence numbers, and every pre-crash acknowledgement must keep its sequence number.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ValiseError, fromBase64, toBase64, utf8, type DeviceId, type UserHandle } from "@valise/core";
import { decodeGroup, encryptMessage, setCryptoProvider, type GroupContext } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient, messageAad, type ReceivedItem } from "@valise/client";
import { freePort } from "@valise/server/testing/net";

const execFileP = promisify(execFile);
const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const TOTAL = 300;
const LANES = 6; // concurrent senders; each lane sends its messages one after the other (ack before next)
// The burst is encrypted in ratchet-generation order and a receiver keeps only 10 skipped generations (ts-mls key
// retention), so message i is sent only once every message before i - WINDOW was acknowledged.
const WINDOW = 8;
const DEADLINE = Date.now() + 55_000;

const children = new Set<ChildProcess>();
const dataDir = mkdtempSync(join(tmpdir(), "valise-crash-"));
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

async function admin(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileP(process.execPath, [CLI, "admin", "--data", dataDir, ...args, "--json"], {
    timeout: 20_000,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** Starts `valise serve` and resolves once /healthz answers. */
async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--data", dataDir, "--port", String(port), "--host", "127.0.0.1", "--log-level", "warn"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.add(child);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`valise serve exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > DEADLINE) throw new Error("server did not come up in time");
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return child;
    } catch {
      /* not yet listening */
    }
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

test(
  "kill -9 mid-burst: every acknowledged message is delivered exactly once, in order, gapless",
  { timeout: 60_000 },
  async () => {
    const t0 = Date.now();
    const lap = (what: string) => console.log(`# ${what}: ${Date.now() - t0} ms`);
    setCryptoProvider(nodeCryptoProvider);
    await admin("unit", "add", "HQ/CRASH");
    const a = await admin("user", "add", "alice", "--unit", "HQ/CRASH");
    const b = await admin("user", "add", "bob", "--unit", "HQ/CRASH");

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let server = await startServer(port);

    const aliceStore = new MemoryKeyStore();
    const alice = await ValiseClient.enroll({
      serverUrl: url,
      code: String(a.enrollmentCode),
      store: aliceStore,
      deviceName: "alice-1",
    });
    const bob = await ValiseClient.enroll({
      serverUrl: url,
      code: String(b.enrollmentCode),
      store: new MemoryKeyStore(),
      deviceName: "bob-1",
    });

    // The direct conversation (creation, Add commit + Welcome, first message) goes through the ordinary SDK path.
    const first = await alice.send("bob", "hello");
    const convId = first.conversation;
    const joined = await bob.sync();
    assert.ok(
      joined.some((i) => i.type === "joined" && i.conversation === convId),
      "bob joined the conversation",
    );
    assert.ok(
      joined.some((i) => i.type === "message" && i.text === "hello"),
      "bob got the first message",
    );

    lap("setup done");
    // Pre-encrypt the burst with alice's group state (generation order = i), so concurrency on the wire does not race
    // the MLS ratchet. Each message has its own idempotency key.
    const state = (await aliceStore.load())!;
    const ctx: GroupContext = {
      keys: {
        user: state.handle as UserHandle,
        device: state.deviceId as DeviceId,
        signaturePublicKey: fromBase64(state.signaturePublicKey),
        signaturePrivateKey: fromBase64(state.signaturePrivateKey),
      },
      verifier: alice.verifier,
    };
    let group = decodeGroup(fromBase64(state.conversations[convId]!.group));
    const aad = utf8(messageAad(convId, state.conversations[convId]!.label));
    const burst: { text: string; idem: string; bytes: Uint8Array }[] = [];
    for (let i = 0; i < TOTAL; i++) {
      const text = `m-${i}`;
      const r = await encryptMessage(ctx, group, utf8(JSON.stringify({ t: "text", text })), aad);
      group = r.group;
      burst.push({
        text,
        idem: `crash-${i}-${toBase64(r.message.slice(-9)).replace(/[^A-Za-z0-9]/g, "x")}`,
        bytes: r.message,
      });
    }

    // Acknowledgements as the senders saw them (seq per message index); which ones were acknowledged before the crash.
    const acked = new Map<number, number>();
    const ackedBeforeCrash = new Map<number, number>();
    let crashed = false;
    // Senders that lose the server wait until it is back and then retry together: the burst was encrypted in ratchet
    // generation order, and a receiver only keeps a few skipped generations (RFC 9420 §9.2 key retention), so lanes
    // must not drift far apart.
    let markRestarted!: () => void;
    const restarted = new Promise<void>((r) => (markRestarted = r));
    let transportErrors = 0;
    const transport = alice.transport;

    let low = 0; // lowest index not yet acknowledged
    let waiters: (() => void)[] = [];
    const ackedIdx = new Set<number>();
    function markAcked(i: number): void {
      ackedIdx.add(i);
      while (ackedIdx.has(low)) low++;
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
    async function post(i: number): Promise<void> {
      while (i - WINDOW >= low) await new Promise<void>((r) => waiters.push(r));
      const m = burst[i]!;
      for (let attempt = 0; ; attempt++) {
        if (Date.now() > DEADLINE) throw new Error(`message ${i} not acknowledged before the deadline`);
        try {
          const r = await transport.postMessage(convId, m.bytes, m.idem);
          acked.set(i, r.seq);
          if (!crashed) ackedBeforeCrash.set(i, r.seq);
          markAcked(i);
          return;
        } catch (e) {
          // Server gone (connection reset/refused): retry the same bytes with the same idempotency key.
          if (e instanceof ValiseError && e.code === "transport_error") {
            transportErrors++;
            if (crashed) await restarted;
            else await sleep(Math.min(20 * (attempt + 1), 200));
            continue;
          }
          throw e;
        }
      }
    }

    lap("burst encrypted");
    const lanes: Promise<void>[] = [];
    for (let l = 0; l < LANES; l++) {
      lanes.push(
        (async () => {
          for (let i = l; i < TOTAL; i += LANES) await post(i);
        })(),
      );
    }

    // Crash once about half is acknowledged, while requests are in flight.
    while (acked.size < TOTAL / 2) {
      if (Date.now() > DEADLINE) throw new Error("burst stalled before the crash point");
      await sleep(1);
    }
    crashed = true;
    const ackedAtKill = acked.size;
    await killHard(server);
    assert.ok(ackedAtKill < TOTAL, "the crash happened mid-burst");
    server = await startServer(port);
    markRestarted();
    await Promise.all(lanes);

    lap(`burst acknowledged (${ackedAtKill} before the kill, ${transportErrors} transport errors)`);
    assert.equal(acked.size, TOTAL, "every message was eventually acknowledged");
    assert.ok(transportErrors > 0 || ackedAtKill < TOTAL, "senders saw the server go away");

    // A sender that lost an acknowledgement (the kill can land between commit and response) retries with the same key:
    // replay every message after the restart, the way such a sender would, and expect the first result each time.
    for (let i = 0; i < TOTAL; i++) {
      const r = await transport.postMessage(convId, burst[i]!.bytes, burst[i]!.idem);
      assert.equal(r.seq, acked.get(i), `replayed message ${i} returns its first seq`);
      assert.equal(r.duplicate, true, `replayed message ${i} is reported as a duplicate`);
    }

    // A retry after the crash returns the first result: pre-crash acknowledgements keep their sequence numbers.
    for (const [i, seq] of ackedBeforeCrash) assert.equal(acked.get(i), seq, `message ${i} kept its acknowledged seq`);
    // Distinct messages got distinct sequence numbers.
    assert.equal(new Set(acked.values()).size, TOTAL, "no two messages share a sequence number");
    // Each lane awaited every ack before the next send, so its sequence numbers must rise.
    for (let l = 0; l < LANES; l++) {
      let prev = 0;
      for (let i = l; i < TOTAL; i += LANES) {
        const s = acked.get(i)!;
        assert.ok(s > prev, `lane ${l}: message ${i} (seq ${s}) after seq ${prev}`);
        prev = s;
      }
    }

    // The raw log (as the creator, a member from seq 1, reads it): gapless from 1 to head, each burst message exactly
    // once at its acknowledged seq.
    const log: { seq: number; kind: string; payload: Uint8Array }[] = [];
    for (let cursor = 0; ;) {
      const page = await alice.transport.messages(convId, cursor, 1000);
      if (page.length === 0) break;
      log.push(...page);
      cursor = page[page.length - 1]!.seq;
    }
    log.forEach((m, k) => assert.equal(m.seq, k + 1, `log is gapless at position ${k}`));
    const bySeq = new Map(log.map((m) => [m.seq, m]));
    for (const [i, seq] of acked) {
      const m = bySeq.get(seq);
      assert.ok(m, `acknowledged message ${i} (seq ${seq}) is in the log`);
      assert.deepEqual(m.payload, burst[i]!.bytes, `seq ${seq} holds message ${i}`);
    }
    const burstPayloads = new Set(burst.map((m) => toBase64(m.bytes)));
    const inLog = log.filter((m) => burstPayloads.has(toBase64(m.payload)));
    assert.equal(inLog.length, TOTAL, "no duplicates of burst messages in the log");
    const head = (await alice.transport.conversations()).find((c) => c.id === convId)!.headSeq;
    assert.equal(head, log.length, "the conversation head is the last message in the log");

    // And decrypted by the receiver's SDK: every message once, in sequence order, no alerts.
    const items: ReceivedItem[] = await bob.sync();
    lap("receiver synced");
    const alerts = items.filter((i) => i.type === "alert");
    assert.deepEqual(alerts, [], "receiver raised no alerts");
    const got = items.filter((i) => i.type === "message" && i.conversation === convId);
    assert.equal(got.length, TOTAL, "receiver got every message");
    const texts = got.map((i) => i.text);
    assert.equal(new Set(texts).size, TOTAL, "receiver got no duplicates");
    const expected = [...acked.entries()].sort((x, y) => x[1] - y[1]).map(([i]) => `m-${i}`);
    assert.deepEqual(texts, expected, "receiver sees messages in acknowledged sequence order");
    for (const it of got)
      assert.equal(it.seq, acked.get(Number(it.text.slice(2))), `${it.text} delivered at its acknowledged seq`);
    const again = await bob.sync();
    assert.equal(again.filter((i) => i.type === "message").length, 0, "a second sync delivers nothing again");

    await killHard(server);
  },
);
