/**
 * SDK paths through one `valise serve` process (SQLite, 127.0.0.1), issue 17 targets:
 *  - catch-up: a receiving device that was offline while 10,000 real MLS application messages (~1 KiB) arrived in
 *    one conversation runs `sync()` until it holds all of them (fetch, decrypt, verify, save). Target < 3 s.
 *    The 10,000 messages are encrypted in this process on the sender's group state and posted over HTTP (sending
 *    them through the SDK is not what is measured).
 *  - small cable send: one desk sends a short cable (no attachment) to one post whose link group exists; the time
 *    `cables.send` takes, end to end, median of several. Target ≤ 15 ms on an idle server.
 * Same-run baselines: one Ed25519 verify (node:crypto; the floor of an MLS decrypt, so 10,000 of them bound a
 * catch-up from below), one `@valise/protocol` decrypt in this process (the same messages, before the server sees
 * them), and one GET /healthz round trip (the floor of any request). Writes bench/results/sdk.json.
 *
 *   node bench/dist/sdk.js [--messages N] [--cables N] [--profile]
 */
import http from "node:http";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Session } from "node:inspector/promises";
import { fromBase64, utf8, type DeviceId, type UserHandle } from "@valise/core";
import {
  decodeGroup,
  encryptMessage,
  processMessage,
  setCryptoProvider,
  type Group,
  type GroupContext,
} from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient, messageAad } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { openStore } from "@valise/server";
import { freshDataDir, startServe } from "./lib/serve.js";
import { percentile, printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "10000" },
    cables: { type: "string", default: "15" },
    profile: { type: "boolean", default: false },
  },
});
const MESSAGES = Number(args.messages);
const CABLES = Number(args.cables);
const round = (x: number, d = 1) => +x.toFixed(d);

function ed25519VerifyUs(n = 3000): number {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const m = new Uint8Array(1200);
  const sig = sign(null, m, privateKey);
  for (let i = 0; i < 300; i++) verify(null, m, publicKey, sig);
  const t = performance.now();
  for (let i = 0; i < n; i++) verify(null, m, publicKey, sig);
  return ((performance.now() - t) * 1000) / n;
}

function request(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  body?: Uint8Array,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  setCryptoProvider(nodeCryptoProvider);
  const started = performance.now();
  const dataDir = freshDataDir("valise-bench-sdk-");
  const codes = new Map<string, string>();
  {
    const store = await openStore({ dataDir, databaseUrl: undefined });
    await store.directory.addUnit("HQ/BENCH", "SECRET/ASIA");
    await store.directory.addUnit("EMB/POST-01", "CONFIDENTIAL/ASIA");
    for (const [handle, unit, clearance] of [
      ["sender", "HQ/BENCH", "SECRET/ASIA"],
      ["receiver", "HQ/BENCH", "SECRET/ASIA"],
      ["desk", "HQ/BENCH", "SECRET/ASIA"],
      ["post1", "EMB/POST-01", "CONFIDENTIAL/ASIA"],
    ] as const) {
      const u = await store.directory.addUser({ handle, units: [unit], clearance, role: "user" });
      codes.set(handle, u.enrollmentCode);
    }
    await store.close();
  }
  const server = await startServe({ dataDir, args: ["--login-rate", "1000"] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const session = new Session();
  const profile = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    if (!args.profile) return f();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    try {
      return await f();
    } finally {
      const { profile: p } = await session.post("Profiler.stop");
      writeFileSync(new URL(`../results/sdk-${name}.cpuprofile`, import.meta.url), JSON.stringify(p));
      session.disconnect();
    }
  };
  try {
    const enroll = (handle: string) =>
      ValiseClient.enroll({
        serverUrl: server.url,
        code: codes.get(handle)!,
        store: new MemoryKeyStore(),
        deviceName: "bench",
        cipher: nodeStreamCipher(),
      });
    const senderStore = new MemoryKeyStore();
    const sender = await ValiseClient.enroll({
      serverUrl: server.url,
      code: codes.get("sender")!,
      store: senderStore,
      deviceName: "bench",
    });
    const receiverStore = new MemoryKeyStore();
    const receiver = await ValiseClient.enroll({
      serverUrl: server.url,
      code: codes.get("receiver")!,
      store: receiverStore,
      deviceName: "bench",
    });
    const first = await sender.send("receiver", "hello");
    await receiver.sync();

    // ---- baselines, same run ----
    const verifyUs = ed25519VerifyUs();
    const healthMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      const r = await request(agent, server.port, "GET", "/healthz", {});
      if (r.status !== 200) throw new Error(`healthz ${r.status}`);
      healthMs.push(performance.now() - t);
    }
    healthMs.sort((a, b) => a - b);

    // ---- 10,000 messages while the receiver is offline ----
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
    let group: Group = decodeGroup(fromBase64(conv.group));
    const aad = utf8(messageAad(first.conversation, conv.label));
    const messages: Uint8Array[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const body = utf8(JSON.stringify({ t: "text", text: `message ${i} ` + "x".repeat(1000) }));
      const r = await encryptMessage(ctx, group, body, aad);
      group = r.group;
      messages.push(r.message);
    }
    // baseline: the protocol decrypt of the first 1,000 on a copy of the receiver's group state
    const rstate = (await receiverStore.load())!;
    const rconv = rstate.conversations[first.conversation]!;
    const rctx: GroupContext = {
      keys: {
        user: rstate.handle as UserHandle,
        device: rstate.deviceId as DeviceId,
        signaturePublicKey: fromBase64(rstate.signaturePublicKey),
        signaturePrivateKey: fromBase64(rstate.signaturePrivateKey),
      },
      verifier: receiver.verifier,
    };
    let rgroup = decodeGroup(fromBase64(rconv.group));
    const probe = Math.min(1000, MESSAGES);
    const td = performance.now();
    for (const m of messages.slice(0, probe)) rgroup = (await processMessage(rctx, rgroup, m)).group;
    const decryptUs = ((performance.now() - td) * 1000) / probe;

    const path = `/v1/conversations/${first.conversation}/messages`;
    const token = sender.transport.token!;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < messages.length) {
          const i = next++;
          const r = await request(
            agent,
            server.port,
            "POST",
            path,
            {
              authorization: `Bearer ${token}`,
              "content-type": "application/octet-stream",
              "content-length": messages[i]!.length,
              "idempotency-key": `bench-sdk-${i}-xxxxxxxx`,
            },
            messages[i],
          );
          if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${r.body.slice(0, 200)}`);
        }
      }),
    );
    const loadAtCatchUp = loadavg()[0]!;
    const tc = performance.now();
    const items = await profile("catchup", () => receiver.sync());
    const catchUpMs = performance.now() - tc;
    const got = items.filter((i) => i.type === "message").length;
    if (got < MESSAGES) throw new Error(`catch-up returned ${got} of ${MESSAGES} messages`);

    // ---- small cable sends, link group already there after the first ----
    const calls: { request: string; ms: number }[] = [];
    let recording = false;
    const timedFetch: typeof fetch = async (input, init) => {
      const t = performance.now();
      try {
        return await fetch(input, init);
      } finally {
        if (recording) {
          const u = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
          calls.push({ request: `${init?.method ?? "GET"} ${u.pathname}`, ms: round(performance.now() - t) });
        }
      }
    };
    const desk = await ValiseClient.enroll({
      serverUrl: server.url,
      code: codes.get("desk")!,
      store: new MemoryKeyStore(),
      deviceName: "bench",
      cipher: nodeStreamCipher(),
      fetch: timedFetch,
    });
    const post = await enroll("post1");
    const cable = (n: number) =>
      desk.cables.send({
        action: ["EMB/POST-01"],
        info: [],
        precedence: "ROUTINE",
        label: "CONFIDENTIAL/ASIA",
        subject: `Small cable ${n}`,
        body: "Short body.",
        attachments: [],
      });
    const tFirst = performance.now();
    await cable(0);
    const firstCableMs = performance.now() - tFirst;
    await post.sync();
    const cableMs: number[] = [];
    await profile("cable", async () => {
      for (let i = 1; i <= CABLES; i++) {
        const t = performance.now();
        await cable(i);
        cableMs.push(performance.now() - t);
      }
    });
    cableMs.sort((a, b) => a - b);
    // one more, with every request it makes timed (what the send is made of)
    recording = true;
    const tOne = performance.now();
    await cable(CABLES + 1);
    recording = false;
    const oneCableMs = performance.now() - tOne;

    const results = {
      benchmark: "sdk",
      catchUp: {
        messages: MESSAGES,
        ms: Math.round(catchUpMs),
        perMessageUs: round((catchUpMs * 1000) / MESSAGES),
        floorMsFromVerify: Math.round((verifyUs * MESSAGES) / 1000),
        floorMsFromDecrypt: Math.round((decryptUs * MESSAGES) / 1000),
        vsDecryptFloor: round(catchUpMs / ((decryptUs * MESSAGES) / 1000), 2),
        loadAverage: round(loadAtCatchUp, 2),
      },
      smallCableSend: {
        sends: CABLES,
        p50Ms: round(percentile(cableMs, 50)),
        p90Ms: round(percentile(cableMs, 90)),
        minMs: round(cableMs[0]!),
        firstCableMs: Math.round(firstCableMs),
        vsHealthzRoundTrip: round(percentile(cableMs, 50) / percentile(healthMs, 50), 1),
        oneSendTimed: {
          ms: round(oneCableMs),
          requests: calls,
          requestMs: round(calls.reduce((a, c) => a + c.ms, 0)),
        },
      },
      baselines: {
        ed25519VerifyUs: round(verifyUs),
        protocolDecryptUs: round(decryptUs),
        healthzRoundTripP50Ms: round(percentile(healthMs, 50), 2),
      },
      targets: { catchUp10kMs: 3000, smallCableSendMs: 15 },
      loadAverage: loadavg().map((x) => round(x, 2)),
      node: process.version,
      elapsedMs: Math.round(performance.now() - started),
      time: new Date().toISOString(),
    };
    printTable("SDK paths (one valise serve, SQLite, 127.0.0.1)", [
      ["Ed25519 verify (µs, baseline)", results.baselines.ed25519VerifyUs],
      ["protocol decrypt, 1 KiB (µs, baseline)", results.baselines.protocolDecryptUs],
      ["GET /healthz round trip p50 (ms, baseline)", results.baselines.healthzRoundTripP50Ms],
      [`catch-up of ${MESSAGES} messages (ms)`, results.catchUp.ms],
      ["catch-up per message (µs)", results.catchUp.perMessageUs],
      ["catch-up / (decrypt × messages)", results.catchUp.vsDecryptFloor],
      [`small cable send p50 (ms, ${CABLES} sends)`, results.smallCableSend.p50Ms],
      ["small cable send p90 (ms)", results.smallCableSend.p90Ms],
      ["first small cable (creates the link group) (ms)", results.smallCableSend.firstCableMs],
      ["load average", results.loadAverage.join(" ")],
    ]);
    console.log(`\nwrote ${writeResults("sdk", results)}`);
  } finally {
    agent.destroy();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
