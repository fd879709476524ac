/**
 * Several nodes (issue 18): delivery through three `valise serve --nats` processes on one PostgreSQL and one NATS,
 * against one `valise serve` on PostgreSQL in the same run; then one node SIGKILLed in the middle of a burst (its
 * clients move to another node and resend what was not acknowledged, with the same idempotency keys; every message is
 * counted in the stored log: each exactly once); then idle WebSockets spread over the nodes (total RSS).
 *
 * Senders and receivers are on different nodes (pair i: sender on node i mod N, receiver on node i+1 mod N), so every
 * push crosses NATS. Messages are real MLS application messages (~1 KiB), one per pair, posted many times with
 * distinct idempotency keys over WebSocket send frames, as bench/delivery.ts does.
 *
 *   VALISE_BENCH_DATABASE_URL=postgres://user@127.0.0.1:5432/db node bench/dist/cluster.js [--messages N]
 *       [--pairs N] [--inflight N] [--idle N] [--idle-hold S] [--nodes N] [--phases throughput,kill,idle]
 *       [--profile DIR] [--out NAME]
 *
 * The idle phase runs on a fresh cluster of N nodes (all alive, nothing else running on them) and holds the sockets
 * for --idle-hold seconds (the servers' periodic session sweeps run meanwhile) before reading every node's RSS. The
 * bench process holds one descriptor per socket: when its soft `ulimit -n` is too low for --idle it re-executes itself
 * under `sh -c 'ulimit -n …'` (up to the hard limit; the nodes inherit it) and records the limit in the results.
 * --profile DIR starts every node with `node --cpu-prof --cpu-prof-dir DIR/<configuration>` and summarises the
 * nodes' top self-time functions per configuration into the results ("profile").
 *
 * Needs PostgreSQL (VALISE_BENCH_DATABASE_URL, else VALISE_TEST_DATABASE_URL: a role that may CREATE DATABASE) and
 * nats-server (PATH, /usr/sbin or VALISE_NATS_SERVER); without them it says so and exits 0 without results.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { fromBase64, utf8, type DeviceId, type UserHandle } from "@valise/core";
import { decodeGroup, encryptMessage, setCryptoProvider, type GroupContext } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient, messageAad } from "@valise/client";
import { loadOrCreateLogKey, openStore } from "@valise/server";
import { natsServerBinary, startNats, type TestNats } from "@valise/server/testing/nats";
import { freshDataDir, startServe, type ServeProcess } from "./lib/serve.js";
import { percentile, printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "6000" },
    warmup: { type: "string", default: "1000" },
    pairs: { type: "string", default: "10" },
    inflight: { type: "string", default: "200" },
    size: { type: "string", default: "1024" },
    nodes: { type: "string", default: "3" },
    idle: { type: "string", default: "10000" },
    "kill-messages": { type: "string", default: "4000" },
    "time-limit": { type: "string", default: "60" },
    "idle-hold": { type: "string", default: "10" },
    phases: { type: "string", default: "throughput,kill,idle" },
    profile: { type: "string" },
    out: { type: "string", default: "cluster" },
  },
});
const MESSAGES = Number(args.messages);
const WARMUP = Number(args.warmup);
const PAIRS = Number(args.pairs);
const INFLIGHT = Number(args.inflight);
const SIZE = Number(args.size);
const NODES = Number(args.nodes);
const IDLE = Number(args.idle);
const KILL_MESSAGES = Number(args["kill-messages"]);
const TIME_LIMIT_MS = Number(args["time-limit"]) * 1000;
const IDLE_HOLD_MS = Number(args["idle-hold"]) * 1000;
const PHASES = new Set(args.phases.split(",").map((x) => x.trim()));
const PROFILE_DIR = args.profile ? resolve(args.profile) : null;
const OUT = args.out;

type Frame = { type: string; ref?: number; seq?: number; code?: string; message?: string; conversationId?: string };

interface Pair {
  index: number;
  sender: ValiseClient;
  receiver: ValiseClient;
  conversationId: string;
  payloadB64: string;
  senderNode: number;
  receiverNode: number;
  sendWs?: WebSocket;
  recvWs?: WebSocket;
  /** Unacknowledged sends: idempotency key → its resolver (resent after a reconnection). */
  pending: Map<string, { start: number; done: (seq: number) => void }>;
  refs: Map<number, string>;
  sentAt: Map<number, number>;
  pushedAt: Map<number, number>;
  /** Seqs pushed to the receiver (distinct). */
  pushedSeqs: Set<number>;
}

interface Cluster {
  nodes: ServeProcess[];
  databaseUrl: string;
  dispose(): Promise<void>;
}

async function main(): Promise<void> {
  const admin = process.env.VALISE_BENCH_DATABASE_URL ?? process.env.VALISE_TEST_DATABASE_URL;
  if (!admin || !natsServerBinary()) {
    console.log(
      `bench/cluster skipped: ${!admin ? "set VALISE_BENCH_DATABASE_URL (PostgreSQL, CREATE DATABASE allowed)" : "no nats-server binary"}`,
    );
    return;
  }
  process.env.VALISE_TEST_DATABASE_URL = admin;
  const { freshDb } = await import("@valise/server/testing/databases");
  setCryptoProvider(nodeCryptoProvider);

  async function startCluster(n: number, nats: TestNats | null, label: string): Promise<Cluster> {
    const db = await freshDb("postgres");
    loadOrCreateLogKey({ dataDir: db.dataDir, env: {} });
    const logKey = readFileSync(join(db.dataDir, "log-key"), "utf8").trim();
    const dirs: string[] = [];
    const nodes: ServeProcess[] = [];
    const env = { ...process.env };
    process.env.VALISE_DATABASE_URL = db.databaseUrl;
    process.env.VALISE_LOG_KEY = logKey;
    process.env.VALISE_BLOB_STORE = "pg";
    try {
      for (let i = 0; i < n; i++) {
        const dataDir = freshDataDir("valise-bench-node-");
        dirs.push(dataDir);
        nodes.push(
          await startServe({
            dataDir,
            timeoutMs: 180_000,
            nodeArgs: PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-dir", join(PROFILE_DIR, label)] : [],
            args: ["--no-web", "--login-rate", "100000", ...(nats ? ["--nats", nats.url] : [])],
          }),
        );
      }
    } finally {
      for (const k of ["VALISE_DATABASE_URL", "VALISE_LOG_KEY", "VALISE_BLOB_STORE"])
        if (env[k] === undefined) delete process.env[k];
        else process.env[k] = env[k];
    }
    return {
      nodes,
      databaseUrl: db.databaseUrl!,
      async dispose() {
        for (const s of nodes) await s.stop();
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
        await db.dispose();
      },
    };
  }

  const alive = (c: Cluster) => c.nodes.filter((s) => s.child.exitCode === null && s.child.signalCode === null);

  async function setupPairs(c: Cluster): Promise<Pair[]> {
    const store = await openStore({ dataDir: freshDataDir(), databaseUrl: c.databaseUrl });
    const codes: { sender: string; receiver: string }[] = [];
    await store.directory.addUnit("HQ/BENCH");
    for (let i = 0; i < PAIRS; i++) {
      const s = await store.directory.addUser({
        handle: `sender${i}`,
        units: ["HQ/BENCH"],
        clearance: "UNCLASSIFIED",
        role: "user",
      });
      const r = await store.directory.addUser({
        handle: `receiver${i}`,
        units: ["HQ/BENCH"],
        clearance: "UNCLASSIFIED",
        role: "user",
      });
      codes.push({ sender: s.enrollmentCode, receiver: r.enrollmentCode });
    }
    await store.close();
    const n = c.nodes.length;
    return Promise.all(
      codes.map(async (code, index): Promise<Pair> => {
        const senderNode = index % n;
        const receiverNode = (index + 1) % n;
        const senderStore = new MemoryKeyStore();
        const sender = await ValiseClient.enroll({
          serverUrl: c.nodes[senderNode]!.url,
          code: code.sender,
          store: senderStore,
          deviceName: "bench",
        });
        const receiver = await ValiseClient.enroll({
          serverUrl: c.nodes[receiverNode]!.url,
          code: code.receiver,
          store: new MemoryKeyStore(),
          deviceName: "bench",
        });
        const first = await sender.send(`receiver${index}`, "hello");
        await receiver.sync();
        const state = (await senderStore.load())!;
        const conv = state.conversations[first.conversation]!;
        const ctx: GroupContext = {
          keys: {
            user: state.handle as UserHandle,
            device: state.deviceId as DeviceId,
            signaturePublicKey: fromBase64(state.signaturePublicKey),
            signaturePrivateKey: fromBase64(state.signaturePrivateKey),
          },
          verifier: sender.verifier,
        };
        const group = decodeGroup(fromBase64(conv.group));
        const aad = utf8(messageAad(first.conversation, conv.label));
        const encrypt = async (k: number) =>
          (await encryptMessage(ctx, group, utf8(JSON.stringify({ t: "text", text: "x".repeat(Math.max(0, k)) })), aad))
            .message;
        const probe = await encrypt(SIZE);
        const message = Buffer.from(await encrypt(SIZE - (probe.length - SIZE)));
        return {
          index,
          sender,
          receiver,
          conversationId: first.conversation,
          payloadB64: message.toString("base64"),
          senderNode,
          receiverNode,
          pending: new Map(),
          refs: new Map(),
          sentAt: new Map(),
          pushedAt: new Map(),
          pushedSeqs: new Set(),
        };
      }),
    );
  }

  /** Measured send→push latencies (while `measuring`). */
  let latencies: number[] = [];
  let measuring = false;
  let ref = 0;

  function openWs(url: string, token: string, onFrame: (f: Frame) => void): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
      let ready = false;
      ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token })));
      ws.once("error", reject);
      // Closed before "ready" (auth timeout on a loaded machine, a node going away): fail, do not hang.
      ws.once("close", (code: number) => {
        if (!ready) reject(new Error(`socket closed before ready (${code})`));
      });
      ws.on("message", (raw: Buffer) => {
        const f = JSON.parse(raw.toString("utf8")) as Frame;
        if (f.type === "ready") {
          ready = true;
          return resolve(ws);
        }
        onFrame(f);
      });
    });
  }

  function record(sent: number, pushed: number) {
    if (measuring) latencies.push(pushed - sent);
  }

  function onPush(p: Pair, f: Frame) {
    if (f.type !== "message" || f.conversationId !== p.conversationId || f.seq === undefined) return;
    p.pushedSeqs.add(f.seq);
    const now = performance.now();
    const sent = p.sentAt.get(f.seq);
    if (sent !== undefined) {
      p.sentAt.delete(f.seq);
      record(sent, now);
    } else p.pushedAt.set(f.seq, now);
  }

  function onSenderFrame(p: Pair, f: Frame) {
    if ((f.type !== "ack" && f.type !== "error") || f.ref === undefined) return;
    const key = p.refs.get(f.ref);
    p.refs.delete(f.ref);
    if (key === undefined) return;
    const w = p.pending.get(key);
    if (!w) return;
    if (f.type === "error" || f.seq === undefined) {
      // A store outage while a node dies is retried on reconnection; anything else is a bench failure.
      if (f.code === "store_error") return;
      throw new Error(`send refused: ${f.code ?? "?"} ${f.message ?? ""}`);
    }
    p.pending.delete(key);
    const pushed = p.pushedAt.get(f.seq);
    if (pushed !== undefined) {
      p.pushedAt.delete(f.seq);
      record(w.start, pushed);
    } else p.sentAt.set(f.seq, w.start);
    w.done(f.seq);
  }

  function sendFrame(p: Pair, key: string) {
    const r = ++ref;
    p.refs.set(r, key);
    p.sendWs?.send(
      JSON.stringify({
        type: "send",
        ref: r,
        conversation: p.conversationId,
        idempotencyKey: key,
        payload: p.payloadB64,
      }),
    );
  }

  /** Connects the pair's sockets (again, to the next live node if its own is gone); resends what is unacknowledged. */
  async function connect(c: Cluster, p: Pair): Promise<void> {
    const live = alive(c);
    const pick = (i: number) => (c.nodes[i] && live.includes(c.nodes[i]) ? c.nodes[i] : live[i % live.length]!);
    const sUrl = pick(p.senderNode).url;
    const rUrl = pick(p.receiverNode).url;
    if (!p.recvWs || p.recvWs.readyState !== WebSocket.OPEN) {
      p.recvWs = await openWs(rUrl, p.receiver.transport.token ?? "", (f) => onPush(p, f));
      p.recvWs.on("close", () => void reconnectSoon(c, p));
    }
    if (!p.sendWs || p.sendWs.readyState !== WebSocket.OPEN) {
      p.sendWs = await openWs(sUrl, p.sender.transport.token ?? "", (f) => onSenderFrame(p, f));
      p.sendWs.on("close", () => void reconnectSoon(c, p));
      p.refs.clear();
      for (const key of p.pending.keys()) sendFrame(p, key);
    }
  }
  const reconnecting = new Set<Pair>();
  let closing = false;
  async function reconnectSoon(c: Cluster, p: Pair): Promise<void> {
    if (closing || reconnecting.has(p)) return;
    reconnecting.add(p);
    try {
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          await connect(c, p);
          reconnections++;
          return;
        } catch {
          /* the node is still going away: try again */
        }
      }
    } finally {
      reconnecting.delete(p);
    }
  }
  let reconnections = 0;

  let keyN = 0;
  function post(p: Pair, keys?: string[]): Promise<number> {
    const key = `bench-${p.index}-${++keyN}-${Date.now()}`;
    keys?.push(key);
    return new Promise((done) => {
      p.pending.set(key, { start: performance.now(), done });
      sendFrame(p, key);
    });
  }

  async function run(
    pairs: Pair[],
    total: number,
    deadline: number,
    keys?: Map<Pair, string[]>,
    onProgress?: (n: number) => void,
  ) {
    let issued = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: INFLIGHT }, async (_, w) => {
        const p = pairs[w % pairs.length]!;
        while (issued < total && performance.now() < deadline) {
          issued++;
          await post(p, keys?.get(p));
          done++;
          onProgress?.(done);
        }
      }),
    );
    return done;
  }

  async function drainPushes(pairs: Pair[], timeoutMs: number) {
    const until = performance.now() + timeoutMs;
    while (pairs.some((p) => p.sentAt.size > 0) && performance.now() < until)
      await new Promise((r) => setTimeout(r, 10));
  }

  async function throughput(label: string, c: Cluster) {
    const pairs = await setupPairs(c);
    for (const p of pairs) await connect(c, p);
    await run(pairs, WARMUP, performance.now() + 30_000);
    await drainPushes(pairs, 5000);
    for (const p of pairs) {
      p.sentAt.clear();
      p.pushedAt.clear();
    }
    latencies = [];
    measuring = true;
    const t0 = performance.now();
    const acked = await run(pairs, MESSAGES, t0 + TIME_LIMIT_MS);
    const elapsedMs = performance.now() - t0;
    await drainPushes(pairs, 5000);
    measuring = false;
    const missing = pairs.reduce((k, p) => k + p.sentAt.size, 0);
    latencies.sort((a, b) => a - b);
    const r = {
      nodes: c.nodes.length,
      messagesPerSecond: Math.round(acked / (elapsedMs / 1000)),
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(latencies[latencies.length - 1] ?? NaN),
      messages: acked,
      missingPushes: missing,
      elapsedMs: Math.round(elapsedMs),
    };
    printTable(`${label}: ${PAIRS} pairs, ${INFLIGHT} in flight, ~${SIZE} B`, [
      ["messages/s", r.messagesPerSecond],
      ["send→push p50 (ms)", r.p50Ms],
      ["send→push p99 (ms)", r.p99Ms],
      ["pushes missing", missing],
    ]);
    return { r, pairs };
  }

  const nats = await startNats();
  if (!nats) throw new Error("nats-server did not start");
  const results: Record<string, unknown> = {
    benchmark: "cluster",
    setup: {
      pairs: PAIRS,
      inFlight: INFLIGHT,
      messageBytes: SIZE,
      messages: MESSAGES,
      warmup: WARMUP,
      phases: [...PHASES],
      database: "PostgreSQL (one database per configuration; blobs in it)",
      transport: "WebSocket send frames with acks; receivers' pushes on another node than their sender",
      machine: "one machine: all nodes, PostgreSQL, NATS and the bench client share its cores",
      cpus: availableParallelism(),
      loadAverageAtStart: loadavg().map(round),
      openFilesLimit: openFilesLimit(),
      ...(process.env.VALISE_BENCH_ULIMIT_RAISED
        ? { openFilesLimitRaisedBy: "sh -c 'ulimit -n …' (the bench re-executed itself)" }
        : {}),
      node: process.version,
      ...(PROFILE_DIR ? { profiledWith: "node --cpu-prof on every node (the profiler costs some throughput)" } : {}),
    },
  };
  const save = (partial?: string) => writeResults(OUT, partial ? { ...results, partial } : results);
  try {
    if (PHASES.has("throughput")) {
      // One node on PostgreSQL, no NATS: the baseline, same run.
      const one = await startCluster(1, null, "one-node");
      try {
        results.oneNode = (await throughput("one node (PostgreSQL)", one)).r;
      } finally {
        closing = true;
        await one.dispose();
        closing = false;
      }
    }
    if (PHASES.has("throughput") || PHASES.has("kill")) {
      const cl = await startCluster(NODES, nats, "cluster");
      try {
        const { r, pairs } = await throughput(`${NODES} nodes (PostgreSQL + NATS), pushes across nodes`, cl);
        results.cluster = r;
        save("kill and idle WebSockets not measured yet");
        if (PHASES.has("kill")) {
          results.kill = await killPhase(cl, pairs);
          save("idle WebSockets not measured yet");
        }
        closing = true;
        for (const p of pairs) {
          p.sendWs?.close();
          p.recvWs?.close();
        }
      } finally {
        closing = true;
        await cl.dispose();
        closing = false;
      }
    }
    if (PROFILE_DIR) results.profile = summariseProfiles(PROFILE_DIR);
    if (PHASES.has("idle") && IDLE > 0) {
      const cl = await startCluster(NODES, nats, "idle");
      try {
        results.idleWebSockets = await idlePhase(cl);
      } finally {
        closing = true;
        await cl.dispose();
        closing = false;
      }
    }
  } finally {
    await nats.stop();
  }

  results.loadAverageAtEnd = loadavg().map(round);
  results.time = new Date().toISOString();
  console.log(`\nresults: ${save()}`);

  /** One node SIGKILLed in the middle of a burst; clients move and resend unacknowledged sends. */
  async function killPhase(cl: Cluster, pairs: Pair[]) {
    const victim = cl.nodes[1]!;
    const keys = new Map(pairs.map((p) => [p, [] as string[]] as const));
    const baseline = new Map<Pair, number>();
    for (const p of pairs) {
      baseline.set(p, await lastSeq(cl, p));
      p.pushedSeqs.clear();
    }
    let killedAt = -1;
    reconnections = 0;
    const t0 = performance.now();
    const acked = await run(pairs, KILL_MESSAGES, t0 + 120_000, keys, (n) => {
      if (killedAt < 0 && n >= KILL_MESSAGES / 3) {
        killedAt = n;
        victim.child.kill("SIGKILL");
      }
    });
    const elapsedMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    let sent = 0;
    let stored = 0;
    let duplicates = 0;
    let lost = 0;
    let receivedByPush = 0;
    for (const p of pairs) {
      const k = keys.get(p)!.length;
      sent += k;
      const seqs = await storedSeqs(cl, p, baseline.get(p)!);
      stored += seqs.length;
      if (seqs.length > k) duplicates += seqs.length - k;
      if (seqs.length < k) lost += k - seqs.length;
      receivedByPush += seqs.filter((s) => p.pushedSeqs.has(s)).length;
    }
    const kill = {
      nodes: NODES,
      killedNode: victim.url,
      killedAfterAcks: killedAt,
      idempotencyKeysSent: sent,
      acknowledged: acked,
      storedInLog: stored,
      duplicatesInLog: duplicates,
      lost,
      exactlyOnce: duplicates === 0 && lost === 0 && acked === sent,
      pushedToReceivers: receivedByPush,
      catchUpOnly: stored - receivedByPush,
      clientReconnections: reconnections,
      elapsedMs: Math.round(elapsedMs),
    };
    printTable(`node SIGKILLed mid-burst (${KILL_MESSAGES} sends)`, [
      ["keys sent / acked", `${sent} / ${acked}`],
      ["stored in the log", stored],
      ["duplicates / lost", `${duplicates} / ${lost}`],
      ["exactly once", kill.exactlyOnce ? "yes" : "NO"],
      ["pushed / by catch-up only", `${receivedByPush} / ${kill.catchUpOnly}`],
    ]);
    return kill;
  }

  /**
   * Idle WebSockets spread over every node of a fresh cluster: each node's RSS before, and after the sockets have
   * been held for IDLE_HOLD_MS (the highest sample of that time). A node that exits meanwhile is reported with the end
   * of its stderr.
   */
  async function idlePhase(cl: Cluster) {
    const pairs = await setupPairs(cl);
    const tokens = pairs.flatMap((p) => [p.sender.transport.token ?? "", p.receiver.transport.token ?? ""]);
    const exits: { node: string; code: number | null; signal: string | null; stderrTail: string }[] = [];
    for (const s of cl.nodes)
      s.child.once("exit", (code, signal) =>
        exits.push({ node: s.url, code, signal, stderrTail: s.stderr().slice(-4000) }),
      );
    await new Promise((r) => setTimeout(r, 2000));
    const pids = cl.nodes.map((s) => s.child.pid!);
    const rss0 = pids.map(rssKiB);
    const sockets: WebSocket[] = [];
    const failures = new Map<string, number>();
    const t0 = performance.now();
    for (let i = 0; i < IDLE; i += 200) {
      const live = alive(cl);
      if (live.length === 0) break;
      await Promise.all(
        Array.from({ length: Math.min(200, IDLE - i) }, (_, j) =>
          openWs(live[(i + j) % live.length]!.url, tokens[(i + j) % tokens.length]!, () => undefined).then(
            (ws) => void sockets.push(ws),
            (e: unknown) => {
              const why = e instanceof Error ? e.message : String(e);
              failures.set(why, (failures.get(why) ?? 0) + 1);
            },
          ),
        ),
      );
    }
    const openMs = performance.now() - t0;
    // Held open: the servers' session sweeps (every 3 s) run over every socket meanwhile.
    const peak = pids.map(() => 0);
    const until = performance.now() + IDLE_HOLD_MS;
    while (performance.now() < until) {
      pids.forEach((pid, k) => (peak[k] = Math.max(peak[k]!, rssKiB(pid))));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const stillOpen = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
    const rss1 = pids.map(rssKiB);
    const before = sum(rss0);
    const after = sum(rss1.map((x) => (Number.isNaN(x) ? 0 : x)));
    const r = {
      sockets: sockets.length,
      stillOpenAfterHold: stillOpen,
      failedToOpen: sum([...failures.values()]),
      ...(failures.size > 0 ? { failures: Object.fromEntries(failures) } : {}),
      nodes: cl.nodes.length,
      nodesAliveAtEnd: alive(cl).length,
      ...(exits.length > 0 ? { nodeExits: exits } : {}),
      sessionsShared: `${tokens.length} sessions (the ${PAIRS} pairs' devices), each used by ~${Math.round(IDLE / tokens.length)} sockets`,
      openSeconds: round(openMs / 1000),
      heldSeconds: IDLE_HOLD_MS / 1000,
      rssBeforeMiB: round(before / 1024),
      rssAfterMiB: round(after / 1024),
      rssPeakMiB: round(sum(peak) / 1024),
      perNodeMiB: rss1.map((x) => round(x / 1024)),
      perSocketKiB: sockets.length ? round((after - before) / sockets.length) : null,
      benchClientRssMiB: round(process.memoryUsage().rss / 1024 / 1024),
      targetTotalMiB: 1024,
      pass: exits.length === 0 && stillOpen === IDLE && after / 1024 < 1024,
    };
    printTable(`${sockets.length} idle WebSockets over ${cl.nodes.length} nodes`, [
      ["opened / failed", `${sockets.length} / ${r.failedToOpen}`],
      ["still open after hold", stillOpen],
      ["node exits", exits.length],
      ["total RSS before (MiB)", r.rssBeforeMiB],
      ["total RSS after (MiB)", r.rssAfterMiB],
      ["per socket (KiB)", r.perSocketKiB ?? "-"],
    ]);
    for (const e of exits) console.error(`node ${e.node} exited (${e.code ?? e.signal}):\n${e.stderrTail}`);
    closing = true;
    for (const ws of sockets) ws.terminate();
    return r;
  }

  async function lastSeq(c: Cluster, p: Pair): Promise<number> {
    const seqs = await storedSeqs(c, p, 0);
    return seqs.length ? seqs[seqs.length - 1]! : 0;
  }
  async function storedSeqs(c: Cluster, p: Pair, after: number): Promise<number[]> {
    const url = alive(c)[0]!.url;
    const out: number[] = [];
    for (let from = after; ;) {
      const r = await fetch(`${url}/v1/conversations/${p.conversationId}/messages?after=${from}&limit=500`, {
        headers: { authorization: `Bearer ${p.receiver.transport.token ?? ""}` },
      });
      if (!r.ok) throw new Error(`catch-up: ${r.status} ${await r.text()}`);
      const page = ((await r.json()) as { messages: { seq: number; kind: string }[] }).messages;
      for (const m of page) if (m.kind === "application") out.push(m.seq);
      if (page.length < 500) return out;
      from = page[page.length - 1]!.seq;
    }
  }
}

/** The process's resident set (NaN once it is gone). */
function rssKiB(pid: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return NaN;
  }
  const m = /VmRSS:\s+(\d+)/.exec(text);
  return m ? Number(m[1]) : NaN;
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** [soft, hard] open-files limit of this process (Linux), or null. */
function openFilesLimits(): [number, number] | null {
  try {
    const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync("/proc/self/limits", "utf8"));
    if (!m) return null;
    const n = (x: string) => (x === "unlimited" ? Infinity : Number(x));
    return [n(m[1]!), n(m[2]!)];
  } catch {
    return null;
  }
}
function openFilesLimit(): number | null {
  return openFilesLimits()?.[0] ?? null;
}

/**
 * The bench holds one descriptor per idle socket (and the nodes their share): below that, re-execute under a higher
 * soft limit (at most the hard one), once. Returns true when the child ran instead (its exit status is ours).
 */
function raiseOpenFilesLimit(): boolean {
  if (!PHASES.has("idle") || IDLE <= 0 || process.env.VALISE_BENCH_ULIMIT_RAISED) return false;
  const lim = openFilesLimits();
  const need = IDLE + 4096;
  if (!lim || lim[0] >= need || lim[1] <= lim[0]) return false;
  const to = Math.min(need, lim[1]);
  console.log(`raising the open-files limit ${lim[0]} → ${to} (sh -c 'ulimit -n ${to}') and running again`);
  const r = spawnSync(
    "/bin/sh",
    ["-c", `ulimit -n ${to} && exec "$0" "$@"`, process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: "inherit",
      env: { ...process.env, VALISE_BENCH_ULIMIT_RAISED: "1" },
    },
  );
  process.exitCode = r.status ?? 1;
  return true;
}

/**
 * The nodes' CPU profiles (`--cpu-prof`), per configuration (a subdirectory each): self time per function summed over
 * the nodes, the top 15, and the share of time by where the code lives (idle, GC, valise, pg, ws, fastify, nats, …).
 */
function summariseProfiles(dir: string) {
  type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
  type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };
  const out: Record<string, unknown> = {};
  let configs: string[];
  try {
    configs = readdirSync(dir);
  } catch {
    return out;
  }
  for (const config of configs) {
    const self = new Map<string, number>();
    const where = new Map<string, number>();
    const busy = new Map<string, number>();
    let total = 0;
    let busyTotal = 0;
    let files = 0;
    for (const f of readdirSync(join(dir, config)).filter((x) => x.endsWith(".cpuprofile"))) {
      const p = JSON.parse(readFileSync(join(dir, config, f), "utf8")) as Profile;
      files++;
      const byId = new Map(p.nodes.map((n) => [n.id, n]));
      const parent = new Map<number, number>();
      for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
      /** The innermost Valise function on the stack (what made the work), else the leaf and its nearest package. */
      const origin = (id: number): string => {
        const leaf = byId.get(id)!.callFrame;
        let pkg: string | null = null;
        for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
          const cf = byId.get(cur)!.callFrame;
          const v = /\/packages\/([^/]+)\/dist\/src\/(.*)$/.exec(cf.url);
          if (v) return `${cf.functionName || "(anonymous)"} ${v[1]}/${v[2]}:${cf.lineNumber + 1}`;
          pkg ??= /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(cf.url)?.[1] ?? null;
        }
        return `${leaf.functionName || "(anonymous)"}${pkg ? ` (called from ${pkg})` : ""}`;
      };
      for (let i = 0; i < p.samples.length; i++) {
        const n = byId.get(p.samples[i]!);
        const dt = (p.timeDeltas[i] ?? 0) / 1000;
        if (!n) continue;
        const cf = n.callFrame;
        const file = cf.url.replace(/^file:\/\//, "");
        const short = file.replace(/^.*\/node_modules\//, "").replace(/^.*\/packages\//, "packages/");
        const key = `${cf.functionName || "(anonymous)"} ${short ? `${short}:${cf.lineNumber + 1}` : ""}`.trim();
        self.set(key, (self.get(key) ?? 0) + dt);
        where.set(area(cf.functionName, file), (where.get(area(cf.functionName, file)) ?? 0) + dt);
        total += dt;
        if (cf.functionName !== "(idle)") {
          const o = origin(p.samples[i]!);
          busy.set(o, (busy.get(o) ?? 0) + dt);
          busyTotal += dt;
        }
      }
    }
    const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
    const topBusy = [...busy.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
    out[config] = {
      profiles: files,
      sampledMs: Math.round(total),
      byArea: Object.fromEntries(
        [...where.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, `${round((100 * v) / total)}%`]),
      ),
      topSelf: top.map(([k, v]) => ({ fn: k, ms: Math.round(v), share: `${round((100 * v) / total)}%` })),
      // Busy (not idle) time by the innermost Valise function on the stack: which server code the time is spent for.
      busyMs: Math.round(busyTotal),
      busyByValiseFunction: topBusy.map(([k, v]) => ({
        fn: k,
        ms: Math.round(v),
        share: `${round((100 * v) / busyTotal)}%`,
      })),
    };
  }
  return out;
}

function area(fn: string, file: string): string {
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "gc";
  if (fn === "(program)") return "program (native, outside JS)";
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
  if (m) {
    const pkg = m[1]!;
    return pkg.startsWith("@valise/") ? `valise ${pkg.slice(8)}` : pkg;
  }
  const v = /\/packages\/([^/]+)\//.exec(file);
  if (v) return `valise ${v[1]}`;
  if (file.startsWith("node:") || file === "") return "node internals";
  return "other";
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (!raiseOpenFilesLimit())
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
