/**
 * History for a user's own new device (issue 14 part 1): the time to transfer 10,000 messages and 100 cables to a
 * new device through one `valise serve` process (SQLite, 127.0.0.1), in this process with the SDK (the CLI's code
 * path: sealed history files, Node stream cipher).
 *
 * The first device holds 100 cable keys (100 real cables, received by sync) and 10,000 messages in its history
 * (written into its sealed store directly: sending 10,000 MLS messages is not what is measured). Measured:
 *  - baseline, same run: approving a second new device from the same profile without a history store (the keys of
 *    the 100 cables only, as before this change), and that device's sync until it holds them;
 *  - with history: approving the new device (keys + history: batches prepared, signed manifest, uploads), then the
 *    new device's sync until it holds the keys and the history transfer is complete (every batch verified).
 *
 *   node bench/dist/history.js [--messages N] [--cables N]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setCryptoProvider } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { HistoryStore, MemoryKeyStore, ValiseClient, type HistoryData } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { FileSealedRecord } from "@valise/client/node/sealed-file";
import { openStore } from "@valise/server";
import { CLI, freshDataDir, startServe } from "./lib/serve.js";
import { rng } from "./lib/search-corpus.js";
import { printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: { messages: { type: "string", default: "10000" }, cables: { type: "string", default: "100" } },
});
const MESSAGES = Number(args.messages);
const CABLES = Number(args.cables);

setCryptoProvider(nodeCryptoProvider);
const cipher = nodeStreamCipher();
const dataDir = freshDataDir("valise-bench-history-");
const profiles = mkdtempSync(join(tmpdir(), "valise-bench-history-profiles-"));

const codes = new Map<string, string>();
{
  const store = await openStore({ dataDir, databaseUrl: undefined });
  await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  await store.directory.addUnit("EMB/BEIJING", "SECRET/ASIA");
  for (const [handle, unit] of [
    ["desk", "HQ/ASIA-1"],
    ["pd", "EMB/BEIJING"],
  ] as const) {
    const r = await store.directory.addUser({ handle, units: [unit], clearance: "SECRET/ASIA", role: "user" });
    codes.set(handle, r.enrollmentCode);
  }
  await store.close();
}
const newCode = (handle: string) => {
  const r = spawnSync(process.execPath, [CLI, "admin", "--data", dataDir, "user", "code", handle, "--json"], {
    encoding: "utf8",
    env: { ...process.env, VALISE_DATABASE_URL: "" },
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { enrollmentCode: string }).enrollmentCode;
};

const server = await startServe({ dataDir, args: ["--login-rate", "1000"] });
try {
  const stores = new Map<string, MemoryKeyStore>();
  const history = (name: string) => (d: { deviceId: string; signaturePrivateKey: Uint8Array }) =>
    HistoryStore.open(
      new FileSealedRecord<HistoryData>(
        join(profiles, `${name}.sealed`),
        d.signaturePrivateKey,
        `history:${d.deviceId}`,
      ),
    );
  async function enroll(name: string, code: string, withHistory = true): Promise<ValiseClient> {
    const store = new MemoryKeyStore();
    stores.set(name, store);
    await ValiseClient.enroll({ serverUrl: server.url, code, store, cipher, deviceName: name });
    return ValiseClient.open({ store, cipher, ...(withHistory ? { history: history(name) } : {}) });
  }
  const desk = await enroll("desk", codes.get("desk")!);
  const laptop = await enroll("laptop", codes.get("pd")!);

  let t = performance.now();
  for (let i = 0; i < CABLES; i++)
    await desk.cables.send({
      action: ["EMB/BEIJING"],
      info: [],
      precedence: "ROUTINE",
      label: "CONFIDENTIAL/ASIA",
      subject: `Cable ${i + 1}`,
      body: `Body of cable ${i + 1}.`,
      attachments: [],
    });
  const cablesSendMs = performance.now() - t;
  const got = await laptop.sync();
  const cablesHeld = got.filter((x) => x.type === "cable").length;
  if (cablesHeld !== CABLES) throw new Error(`laptop received ${cablesHeld} cables`);

  // 10,000 messages in the laptop's history (200 conversations, 20–400 characters each).
  const h = (await laptop.history())!;
  const r = rng(7);
  const words = "meeting embassy visa policy report treaty border trade Tokyo Beijing courier draft reply".split(" ");
  for (let i = 0; i < MESSAGES; i++) {
    const n = 3 + Math.floor(r() * 60);
    h.add({
      conversation: `c-bench${String(i % 200).padStart(4, "0")}`,
      seq: 1 + Math.floor(i / 200),
      from: r() < 0.5 ? "pd" : "desk",
      text: Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(" "),
      label: r() < 0.5 ? "CONFIDENTIAL/ASIA" : "SECRET/ASIA",
      time: new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString(),
      kind: "message",
    });
  }
  await h.save();

  async function untilDone(dev: ValiseClient, wantHistory: boolean): Promise<{ ms: number; syncs: number }> {
    const t0 = performance.now();
    for (let syncs = 1; ; syncs++) {
      await dev.sync();
      const keys = dev.heldKeys().cables.length;
      const hs = wantHistory ? (await dev.history())!.transfersIn() : [];
      if (keys >= CABLES && (!wantHistory || (hs.length > 0 && hs.every((x) => x.complete))))
        return { ms: performance.now() - t0, syncs };
      if (hs.some((x) => x.refused.length > 0)) throw new Error(JSON.stringify(hs));
      if (syncs > 20) throw new Error(`not done after 20 syncs: keys ${keys}, ${JSON.stringify(hs)}`);
    }
  }

  // Baseline: keys only (the same profile opened without a history store).
  const phone0 = await enroll("phone-baseline", newCode("pd"), false);
  const laptopKeysOnly = await ValiseClient.open({ store: stores.get("laptop")!, cipher });
  t = performance.now();
  const base = await laptopKeysOnly.approveDevice(phone0.deviceId);
  const baseApproveMs = performance.now() - t;
  const baseRecv = await untilDone(phone0, false);

  // With history.
  const phone = await enroll("phone", newCode("pd"));
  const laptop2 = await ValiseClient.open({ store: stores.get("laptop")!, cipher, history: history("laptop") });
  const phases: Record<string, number> = {};
  t = performance.now();
  const res = await laptop2.approveDevice(phone.deviceId, undefined, (p) => {
    if (p.done === p.total) phases[p.phase] = performance.now() - t;
  });
  const approveMs = performance.now() - t;
  const recv = await untilDone(phone, true);
  const ph = (await phone.history())!;
  if (ph.data.messages.length !== MESSAGES) throw new Error(`phone has ${ph.data.messages.length} messages`);

  const result = {
    bench: "history",
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadavg: loadavg() },
    messages: MESSAGES,
    cables: CABLES,
    note:
      "A user's laptop holding the keys of 100 cables and 10,000 messages approves a new phone: keys forwarded in MLS " +
      "(as before), history as encrypted blob batches of 1,000 messages with a signed manifest. Baseline in the same " +
      "run: the same approval of another new device from the same profile without a history store (keys only). " +
      "Times in ms, one valise serve (SQLite) on 127.0.0.1, both devices in this process; the machine was shared " +
      "(see loadavg).",
    baseline: {
      approveMs: Math.round(baseApproveMs),
      receiveMs: Math.round(baseRecv.ms),
      totalMs: Math.round(baseApproveMs + baseRecv.ms),
      keys: base.keys,
    },
    withHistory: {
      approveMs: Math.round(approveMs),
      approvePhasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])),
      receiveMs: Math.round(recv.ms),
      receiveSyncs: recv.syncs,
      totalMs: Math.round(approveMs + recv.ms),
      keys: res.keys,
      history: res.history,
    },
    cablesSendMs: Math.round(cablesSendMs),
  };
  printTable(`history to a new device: ${MESSAGES} messages, ${CABLES} cables`, [
    ["baseline (keys only): approve ms", result.baseline.approveMs],
    ["baseline (keys only): new device sync ms", result.baseline.receiveMs],
    ["baseline (keys only): total ms", result.baseline.totalMs],
    ["with history: approve (keys + history upload) ms", result.withHistory.approveMs],
    ...Object.entries(result.withHistory.approvePhasesMs).map(
      ([k, v]) => [`  of which until ${k} done ms`, v] as [string, number],
    ),
    ["with history: new device sync until complete ms", result.withHistory.receiveMs],
    ["with history: total ms", result.withHistory.totalMs],
    ["history batches", res.history?.batches ?? 0],
  ]);
  console.log(`wrote ${writeResults("history", result)}`);
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profiles, { recursive: true, force: true });
}
