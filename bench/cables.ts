/**
 * One 20 MB cable to 30 addressee units through one `valise serve` process (SQLite, 127.0.0.1): the content is
 * encrypted once and stored once; its key goes to each addressee unit's link group inside an MLS message. Measures
 * the time to send (encrypt + upload + release + 30 key deliveries), then the time until each of the 30 posts has
 * received the cable (sync) and opened it (download + decrypt all 20 MB), all posts at once. The first cable also
 * creates the 30 link groups (MLS create + add); the second reuses them: both are reported.
 *
 *   node bench/dist/cables.js [--posts N] [--mb N]
 */
import { readdirSync, statSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setCryptoProvider } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient, bytesSource } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { openStore } from "@valise/server";
import { freshDataDir, startServe } from "./lib/serve.js";
import { percentile, printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    posts: { type: "string", default: "30" },
    mb: { type: "string", default: "20" },
  },
});
const POSTS = Number(args.posts);
const BYTES = Number(args.mb) * 1_000_000;

setCryptoProvider(nodeCryptoProvider);
const cipher = nodeStreamCipher();

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

const dataDir = freshDataDir("valise-bench-cables-");
const posts = Array.from({ length: POSTS }, (_, i) => `EMB/POST-${String(i + 1).padStart(2, "0")}`);
const codes: { handle: string; code: string }[] = [];
{
  const store = await openStore({ dataDir, databaseUrl: undefined });
  await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  for (const p of posts) await store.directory.addUnit(p, "CONFIDENTIAL/ASIA");
  const s = await store.directory.addUser({
    handle: "desk",
    units: ["HQ/ASIA-1"],
    clearance: "SECRET/ASIA",
    role: "user",
  });
  codes.push({ handle: "desk", code: s.enrollmentCode });
  for (const [i, p] of posts.entries()) {
    const r = await store.directory.addUser({
      handle: `post${i + 1}`,
      units: [p],
      clearance: "CONFIDENTIAL/ASIA",
      role: "user",
    });
    codes.push({ handle: `post${i + 1}`, code: r.enrollmentCode });
  }
  await store.close();
}
const server = await startServe({ dataDir, args: ["--login-rate", "1000"] });
try {
  const clients = new Map<string, ValiseClient>();
  for (const c of codes)
    clients.set(
      c.handle,
      await ValiseClient.enroll({ serverUrl: server.url, code: c.code, store: new MemoryKeyStore(), cipher }),
    );
  const desk = clients.get("desk")!;
  const readers = posts.map((_, i) => clients.get(`post${i + 1}`)!);
  const attachment = globalThis.crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(BYTES);
  for (let o = 0; o < BYTES; o += attachment.length) big.set(attachment.subarray(0, Math.min(65536, BYTES - o)), o);

  async function round(n: number) {
    const t0 = performance.now();
    let uploadedAt = 0;
    const sent = await desk.cables.send(
      {
        action: posts.slice(0, Math.ceil(POSTS / 2)),
        info: posts.slice(Math.ceil(POSTS / 2)),
        precedence: "IMMEDIATE",
        label: "CONFIDENTIAL/ASIA",
        subject: `Bench cable ${n}`,
        body: "Body.",
        attachments: [{ name: "annex.bin", source: bytesSource(big) }],
      },
      (done, total) => {
        if (done === total) uploadedAt = performance.now();
      },
    );
    const sendMs = performance.now() - t0;
    const received: number[] = [];
    const opened: number[] = [];
    await Promise.all(
      readers.map(async (r) => {
        const items = await r.sync();
        if (!items.some((i) => i.type === "cable" && i.id === sent.id)) throw new Error("cable not received");
        received.push(performance.now() - t0);
        let bytes = 0;
        await r.cables.open(sent.reference, {
          onAttachment: async (_a, it) => {
            for await (const p of it) bytes += p.length;
          },
        });
        if (bytes !== BYTES) throw new Error(`attachment ${bytes} bytes`);
        opened.push(performance.now() - t0);
      }),
    );
    received.sort((a, b) => a - b);
    opened.sort((a, b) => a - b);
    return {
      reference: sent.reference,
      sendMs: Math.round(sendMs),
      encryptUploadMs: Math.round(uploadedAt - t0),
      releaseAndKeyDeliveryMs: Math.round(sendMs - (uploadedAt - t0)),
      receivedAllMs: Math.round(received.at(-1)!),
      receivedP50Ms: Math.round(percentile(received, 0.5)),
      openedAllMs: Math.round(opened.at(-1)!),
      openedP50Ms: Math.round(percentile(opened, 0.5)),
    };
  }

  const first = await round(1);
  const second = await round(2);
  const stored = dirBytes(join(dataDir, "blobs"));
  const result = {
    bench: "cables",
    machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
    posts: POSTS,
    cableBytes: BYTES,
    note:
      "one desk sends one cable with a 20 MB attachment to N addressee units (half ACTION, half INFO), one user per " +
      "unit; all N posts then sync and open it concurrently in this process. The first cable also creates the N " +
      "link groups (MLS create + add); the second reuses them. Times are from the start of the send.",
    firstCable: first,
    secondCable: second,
    blobBytesStoredForTwoCables: stored,
    storedOnce: stored < 2 * BYTES * 1.01 + 1_000_000,
  };
  printTable(`one ${BYTES / 1e6} MB cable to ${POSTS} units`, [
    ["first: send (encrypt+upload+release+keys) ms", first.sendMs],
    ["first: of which encrypt+upload ms", first.encryptUploadMs],
    ["first: all posts received ms", first.receivedAllMs],
    ["first: all posts opened (20 MB decrypted) ms", first.openedAllMs],
    ["second: send ms", second.sendMs],
    ["second: of which release + key delivery ms", second.releaseAndKeyDeliveryMs],
    ["second: all posts received ms", second.receivedAllMs],
    ["second: all posts opened ms", second.openedAllMs],
    ["blob bytes on disk (two cables)", stored],
  ]);
  console.log(`wrote ${writeResults("cables", result)}`);
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
