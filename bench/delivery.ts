/**
 * Delivery throughput and latency through one `valise serve` process (DESIGN §5): SQLite (WAL, synchronous=FULL,
 * batched commits: every message durable before its ack), concurrent sender/receiver pairs on 127.0.0.1, receivers on
 * WebSocket push. Measures acknowledged messages/s and send→push latency (p50/p99).
 *
 * Encryption is not what is measured: each pair's direct conversation is set up through the SDK, then one real MLS
 * application message of ~1 KiB is encrypted per conversation and posted many times with distinct idempotency keys
 * (the server only parses the MLS header).
 *
 *   node bench/dist/delivery.js [--messages N] [--pairs N] [--inflight N] [--size BYTES] [--log-level L] [--profile]
 *
 * --profile runs the server with `node --cpu-prof` (profile written to bench/results/ on exit).
 */
import http from "node:http";
import { readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { fromBase64, utf8, type DeviceId, type UserHandle } from "@valise/core";
import { decodeGroup, encryptMessage, setCryptoProvider, type GroupContext } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient, messageAad, type MinimalWebSocket, type WebSocketFactory } from "@valise/client";
import { nodeWebSocket } from "@valise/client/node/websocket";
import { openStore } from "@valise/server";
import { freshDataDir, startServe } from "./lib/serve.js";
import { percentile, printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "20000" },
    warmup: { type: "string", default: "2000" },
    pairs: { type: "string", default: "10" },
    inflight: { type: "string", default: "200" },
    size: { type: "string", default: "1024" },
    "log-level": { type: "string", default: "warn" },
    "time-limit": { type: "string", default: "60" },
    profile: { type: "boolean", default: false },
    "keep-data": { type: "boolean", default: false },
    transport: { type: "string", default: "ws" },
  },
});
const TRANSPORT = args.transport === "http" ? "http" : "ws";
const MESSAGES = Number(args.messages);
const WARMUP = Number(args.warmup);
const PAIRS = Number(args.pairs);
const INFLIGHT = Number(args.inflight);
const SIZE = Number(args.size);
const TIME_LIMIT_MS = Number(args["time-limit"]) * 1000;
const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "results");

interface Pair {
  index: number;
  sender: ValiseClient;
  receiver: ValiseClient;
  conversationId: string;
  path: string;
  message: Buffer;
  /** seq → send time (set on ack) and seq → push time (set on push before the ack arrived). */
  sentAt: Map<number, number>;
  pushedAt: Map<number, number>;
  ws?: WebSocket;
  /** Sender's WebSocket for `--transport ws`: send frames, acks matched by ref. */
  sendWs?: WebSocket;
  payloadB64: string;
  acks: Map<number, (a: { type: string; seq?: number; code?: string; message?: string }) => void>;
}

async function main(): Promise<void> {
  setCryptoProvider(nodeCryptoProvider);
  const dataDir = freshDataDir();
  const setupStart = performance.now();

  // Directory: one unit, a sender and a receiver user per pair (written straight into the fresh database).
  const codes: { sender: string; receiver: string }[] = [];
  const sdkCodes: string[] = [];
  {
    const store = await openStore({ dataDir, databaseUrl: undefined });
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
    // A pair of SDK clients for the push→display measurement (their conversation carries only real messages).
    for (const handle of ["pushsender", "pushreceiver"]) {
      const u = await store.directory.addUser({ handle, units: ["HQ/BENCH"], clearance: "UNCLASSIFIED", role: "user" });
      sdkCodes.push(u.enrollmentCode);
    }
    await store.close();
  }

  const server = await startServe({
    dataDir,
    logLevel: args["log-level"],
    nodeArgs: args.profile ? ["--cpu-prof", "--cpu-prof-dir", RESULTS_DIR] : [],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: INFLIGHT, maxFreeSockets: INFLIGHT });
  try {
    // Enroll, open each pair's direct conversation through the SDK, and encrypt one ~SIZE-byte message per pair.
    const pairs: Pair[] = await Promise.all(
      codes.map(async (c, index): Promise<Pair> => {
        const senderStore = new MemoryKeyStore();
        const sender = await ValiseClient.enroll({
          serverUrl: server.url,
          code: c.sender,
          store: senderStore,
          deviceName: "bench",
        });
        const receiver = await ValiseClient.enroll({
          serverUrl: server.url,
          code: c.receiver,
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
        const encrypt = async (n: number) =>
          (await encryptMessage(ctx, group, utf8(JSON.stringify({ t: "text", text: "x".repeat(Math.max(0, n)) })), aad))
            .message;
        const probe = await encrypt(SIZE);
        const message = Buffer.from(await encrypt(SIZE - (probe.length - SIZE)));
        return {
          index,
          sender,
          receiver,
          conversationId: first.conversation,
          path: `/v1/conversations/${first.conversation}/messages`,
          message,
          payloadB64: message.toString("base64"),
          acks: new Map(),
          sentAt: new Map(),
          pushedAt: new Map(),
        };
      }),
    );

    // Receivers listen on WebSocket push.
    const latencies: number[] = [];
    let pushes = 0;
    let measuring = false;
    function record(p: Pair, seq: number, sent: number, pushed: number): void {
      if (measuring) latencies.push(pushed - sent);
    }
    await Promise.all(
      pairs.map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/ws`);
            p.ws = ws;
            ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token: p.receiver.transport.token })));
            ws.once("error", reject);
            ws.on("message", (raw: Buffer) => {
              const ev = JSON.parse(raw.toString("utf8")) as { type: string; conversationId?: string; seq?: number };
              if (ev.type === "ready") return resolve();
              if (ev.type !== "message" || ev.conversationId !== p.conversationId || ev.seq === undefined) return;
              pushes++;
              const now = performance.now();
              const sent = p.sentAt.get(ev.seq);
              if (sent !== undefined) {
                p.sentAt.delete(ev.seq);
                record(p, ev.seq, sent, now);
              } else p.pushedAt.set(ev.seq, now);
            });
          }),
      ),
    );
    if (TRANSPORT === "ws")
      await Promise.all(
        pairs.map(
          (p) =>
            new Promise<void>((resolve, reject) => {
              const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/ws`);
              p.sendWs = ws;
              ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token: p.sender.transport.token })));
              ws.once("error", reject);
              ws.on("message", (raw: Buffer) => {
                const ev = JSON.parse(raw.toString("utf8")) as { type: string; ref?: number; seq?: number };
                if (ev.type === "ready") return resolve();
                if ((ev.type === "ack" || ev.type === "error") && ev.ref !== undefined) {
                  const done = p.acks.get(ev.ref);
                  p.acks.delete(ev.ref);
                  done?.(ev);
                }
              });
            }),
        ),
      );
    const setupMs = performance.now() - setupStart;

    let idem = 0;
    function onAck(p: Pair, seq: number, start: number): void {
      const pushed = p.pushedAt.get(seq);
      if (pushed !== undefined) {
        p.pushedAt.delete(seq);
        record(p, seq, start, pushed);
      } else p.sentAt.set(seq, start);
    }
    function postWs(p: Pair): Promise<void> {
      const start = performance.now();
      const ref = ++idem;
      const key = `bench-${p.index}-${ref}-xxxxxxxx`;
      return new Promise<void>((resolve, reject) => {
        p.acks.set(ref, (a) => {
          if (a.type !== "ack" || a.seq === undefined)
            return reject(new Error(`ws send: ${a.code ?? "?"} ${a.message ?? ""}`));
          onAck(p, a.seq, start);
          resolve();
        });
        p.sendWs!.send(
          JSON.stringify({
            type: "send",
            ref,
            conversation: p.conversationId,
            idempotencyKey: key,
            payload: p.payloadB64,
          }),
        );
      });
    }
    function post(p: Pair): Promise<void> {
      if (TRANSPORT === "ws") return postWs(p);
      const start = performance.now();
      const key = `bench-${p.index}-${++idem}-xxxxxxxx`;
      return new Promise<void>((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: "127.0.0.1",
            port: server.port,
            method: "POST",
            path: p.path,
            headers: {
              authorization: `Bearer ${p.sender.transport.token}`,
              "content-type": "application/octet-stream",
              "content-length": p.message.length,
              "idempotency-key": key,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const body = Buffer.concat(chunks).toString("utf8");
              if (res.statusCode !== 201)
                return reject(new Error(`POST ${p.path}: ${res.statusCode} ${body.slice(0, 200)}`));
              const seq = (JSON.parse(body) as { seq: number }).seq;
              const pushed = p.pushedAt.get(seq);
              if (pushed !== undefined) {
                p.pushedAt.delete(seq);
                record(p, seq, start, pushed);
              } else p.sentAt.set(seq, start);
              resolve();
            });
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(p.message);
      });
    }

    /** `total` sends with `INFLIGHT` workers spread over the pairs; stops early at the deadline. */
    async function run(total: number, deadline: number): Promise<number> {
      let issued = 0;
      let done = 0;
      await Promise.all(
        Array.from({ length: INFLIGHT }, async (_, w) => {
          const p = pairs[w % pairs.length]!;
          while (issued < total && performance.now() < deadline) {
            issued++;
            await post(p);
            done++;
          }
        }),
      );
      return done;
    }

    async function drainPushes(expected: number, timeoutMs: number): Promise<void> {
      const until = performance.now() + timeoutMs;
      while (pushes < expected && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    }

    // Warm-up (JIT, connection pool, SQLite page cache), not measured.
    const warm = await run(WARMUP, performance.now() + 20_000);
    await drainPushes(warm, 5_000);
    for (const p of pairs) {
      p.sentAt.clear();
      p.pushedAt.clear();
    }
    pushes = 0;

    measuring = true;
    const before = await readMetrics(server.metricsUrl);
    const loadAtStart = loadavg().map(round);
    const clientCpu0 = process.cpuUsage();
    const serverCpu0 = processCpuMs(server.child.pid);
    const t0 = performance.now();
    const acked = await run(MESSAGES, t0 + TIME_LIMIT_MS);
    const elapsedMs = performance.now() - t0;
    // CPU time of each process over the measured window (the bench client shares the machine with the server: if it
    // used most of a core, it would be the limit, not the server).
    const clientCpuUse = process.cpuUsage(clientCpu0);
    const clientCpuMs = (clientCpuUse.user + clientCpuUse.system) / 1000;
    const serverCpuMs = processCpuMs(server.child.pid) - serverCpu0;
    const after = await readMetrics(server.metricsUrl);
    await drainPushes(acked, 5_000);
    measuring = false;
    const missingPushes = pairs.reduce((n, p) => n + p.sentAt.size, 0);
    const display = await pushToDisplay(server.url, sdkCodes);

    latencies.sort((a, b) => a - b);
    // Mean append batch size over the whole run (from the server's Prometheus metrics).
    // Append batches and transactions over the measured window (the server's Prometheus metrics before and after it;
    // the whole run would count the warm-up and the push→display phase's batches of one).
    const delta = (name: string) => after(name) - before(name);
    const meanBatch = delta("valise_append_batch_size_sum") / delta("valise_append_batch_size_count");
    // Time inside append transactions (begin → durable commit; SQLite runs them on the event loop): message batches
    // (with the audit events that rode in them) and audit batches committed on their own.
    const transactions = Object.fromEntries(
      ["message", "audit"].map((kind) => {
        const n = delta(`valise_db_transaction_seconds_count{kind="${kind}",outcome="ok"}`);
        const ms = delta(`valise_db_transaction_seconds_sum{kind="${kind}",outcome="ok"}`) * 1000;
        return [kind, { count: n, totalMs: round(ms), meanMs: round(ms / n) }];
      }),
    );
    const auditEvents = delta("valise_audit_batch_size_sum");
    const messagesPerSecond = acked / (elapsedMs / 1000);
    const result = {
      benchmark: "delivery",
      messagesPerSecond: Math.round(messagesPerSecond),
      p50Ms: round(percentile(latencies, 50)),
      p90Ms: round(percentile(latencies, 90)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(latencies[latencies.length - 1] ?? NaN),
      messages: acked,
      pushesReceived: pushes,
      missingPushes,
      meanAppendBatch: round(meanBatch),
      /** Append transactions over the measured window: message batches and audit batches committed alone. */
      transactions,
      /** Audit events through the recorder in the window (a pushed message's read each, riding or alone). */
      recordedAuditEvents: auditEvents,
      // Issue 17: a pushed message handed to the app by the receiving SDK (ValiseClient.listen), measured from the
      // frame's arrival at the receiver's socket to onItems; real MLS messages sent one at a time by a listening SDK.
      pushToDisplayMs: display,
      elapsedMs: Math.round(elapsedMs),
      // CPU over the measured window: cores used (CPU time / wall time) and CPU microseconds per acknowledged message.
      cpu: {
        serverCores: round(serverCpuMs / elapsedMs),
        serverUsPerMessage: round((serverCpuMs * 1000) / acked),
        clientCores: round(clientCpuMs / elapsedMs),
        clientUsPerMessage: round((clientCpuMs * 1000) / acked),
      },
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: loadavg().map(round),
      setup: {
        pairs: PAIRS,
        inFlight: INFLIGHT,
        messageBytes: pairs[0]!.message.length,
        warmupMessages: warm,
        durable: true,
        database: "SQLite (WAL, synchronous=FULL), batched commits",
        transport:
          TRANSPORT === "ws"
            ? "WebSocket send frames (JSON, base64 MLS message) with acks, WebSocket push to receivers"
            : "HTTP/1.1 keep-alive (node:http Agent) for sends, WebSocket push to receivers",
        serverLogLevel: args["log-level"],
        node: process.version,
        setupMs: Math.round(setupMs),
      },
      targets: { messagesPerSecond: 8000, p99Ms: 50, pushToDisplayP99Ms: 5 },
      pass: messagesPerSecond >= 8000 && percentile(latencies, 99) <= 50 && missingPushes === 0 && display.p99 <= 5,
      time: new Date().toISOString(),
    };
    printTable(
      `delivery through one valise serve (SQLite, durable) — ${PAIRS} pairs, ${INFLIGHT} in flight, ${result.setup.messageBytes} B`,
      [
        ["messages acknowledged", acked],
        ["elapsed (ms)", result.elapsedMs],
        ["messages/s", result.messagesPerSecond],
        ["send→push p50 (ms)", result.p50Ms],
        ["send→push p90 (ms)", result.p90Ms],
        ["send→push p99 (ms)", result.p99Ms],
        ["send→push max (ms)", result.maxMs],
        ["pushes missing", missingPushes],
        ["mean append batch (server, window)", round(meanBatch)],
        ...(["message", "audit"] as const).map((k): [string, string] => [
          `${k} transactions (window: n, mean ms)`,
          `${transactions[k]!.count}, ${transactions[k]!.meanMs}`,
        ]),
        ["server CPU (cores, µs/msg)", `${result.cpu.serverCores}, ${result.cpu.serverUsPerMessage}`],
        ["bench client CPU (cores, µs/msg)", `${result.cpu.clientCores}, ${result.cpu.clientUsPerMessage}`],
        ["load average (start → end)", `${loadAtStart.join(" ")} → ${result.loadAverageAtEnd.join(" ")}`],
        [`push→display by the SDK p50 (ms, ${display.samples} msgs)`, display.p50],
        ["push→display by the SDK p99 (ms)", display.p99],
        ["target", "≥ 8000 msg/s, p99 ≤ 50 ms; push→display p99 ≤ 5 ms"],
        ["pass", result.pass ? "yes" : "no"],
      ],
    );
    if (!args.profile) console.log(`\nresults: ${writeResults("delivery", result)}`);
    else console.log(`\n(profile run: results not written; server CPU profile goes to ${RESULTS_DIR})`);
    for (const p of pairs) {
      p.ws?.close();
      p.sendWs?.close();
    }
  } finally {
    agent.destroy();
    await server.stop();
    if (!args["keep-data"]) rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Push → display: a listening SDK sends `n` real messages one at a time (over its socket); the receiving SDK's
 * socket is wrapped to note when each message frame arrives, and its `listen` callback when the message is handed
 * over. Returns percentiles of the difference.
 */
async function pushToDisplay(
  url: string,
  codes: string[],
  n = 200,
): Promise<{ p50: number; p99: number; max: number; samples: number }> {
  const a = await ValiseClient.enroll({
    serverUrl: url,
    code: codes[0]!,
    store: new MemoryKeyStore(),
    deviceName: "b",
  });
  const b = await ValiseClient.enroll({
    serverUrl: url,
    code: codes[1]!,
    store: new MemoryKeyStore(),
    deviceName: "b",
  });
  const first = await a.send("pushreceiver", "hello");
  await b.sync();
  const arrived = new Map<number, number>();
  const shown = new Map<number, number>();
  let wake: (() => void) | undefined;
  const spy: WebSocketFactory = (u) => {
    const ws = nodeWebSocket(u);
    const w: MinimalWebSocket = {
      send: (d) => ws.send(d),
      close: () => ws.close(),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    ws.onopen = (e) => w.onopen?.(e);
    ws.onclose = (e) => w.onclose?.(e);
    ws.onerror = (e) => w.onerror?.(e);
    ws.onmessage = (e) => {
      const t = performance.now();
      const seq = /"type":"message".*"seq":(\d+)/.exec(String(e.data))?.[1];
      if (seq) arrived.set(Number(seq), t);
      w.onmessage?.(e);
    };
    return w;
  };
  const listenB = await b.listen(spy, (items) => {
    const t = performance.now();
    for (const i of items) if (i.type === "message") shown.set(i.seq, t);
    wake?.();
  });
  const listenA = await a.listen(nodeWebSocket, () => {});
  await new Promise((r) => setTimeout(r, 200));
  const diffs: number[] = [];
  for (let i = 0; i < n; i++) {
    const { seq } = await a.sendText(first.conversation, `m${i}`);
    const deadline = performance.now() + 5_000;
    while (!shown.has(seq) && performance.now() < deadline) await new Promise<void>((r) => (wake = r));
    const at = arrived.get(seq);
    const sh = shown.get(seq);
    if (at !== undefined && sh !== undefined) diffs.push(sh - at);
  }
  listenA.close();
  listenB.close();
  diffs.sort((x, y) => x - y);
  return {
    p50: round(percentile(diffs, 50)),
    p99: round(percentile(diffs, 99)),
    max: round(diffs[diffs.length - 1] ?? NaN),
    samples: diffs.length,
  };
}

/** A reader of one scrape of the server's Prometheus metrics: the value of a series (`name{labels}`), NaN if absent. */
async function readMetrics(url: string): Promise<(series: string) => number> {
  const values = new Map<string, number>();
  for (const line of (await (await fetch(url)).text()).split("\n")) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return (series) => values.get(series) ?? NaN;
}

/** User + system CPU time (ms) of a process, all its threads, from /proc (Linux); NaN elsewhere. */
function processCpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces): utime and stime are fields 14 and 15, in clock ticks.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
