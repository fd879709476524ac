/**
 * A cluster node process killed (issue 18): two `valise serve --nats` processes on one PostgreSQL and one NATS; the
 * leader's process is SIGKILLed; the other process takes the leadership (its checkpoint signer and directory watch
 * run from then on) and a client whose socket was on the dead node reconnects to it and is told of the next directory
 * change. (packages/server/test/cluster.test.ts covers the rest in one process: detection resuming without duplicate
 * alerts, pushes and alerts across nodes, NATS outages.)
 *
 * Needs PostgreSQL (VALISE_TEST_DATABASE_URL) and a nats-server binary; skipped with the reason without them, a
 * failure on CI.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { loadOrCreateLogKey, openStore, type Store } from "@valise/server";
import { freshDb, PG_URL } from "@valise/server/testing/databases";
import { natsServerBinary, startNats } from "@valise/server/testing/nats";
import { startServeProcess } from "./cli-process.js";

const SKIP = !PG_URL
  ? "no PostgreSQL: set VALISE_TEST_DATABASE_URL (CI does)"
  : !natsServerBinary()
    ? "no nats-server binary (apt-get install nats-server)"
    : false;
if (process.env.CI === "true" && SKIP) throw new Error(`cluster process test cannot run on CI: ${SKIP}`);

const LEADER_LINE = "this node is the cluster leader";

/** Enrolls a device of `handle` over HTTP (through `url`) and logs it in; returns its session token. */
async function enrollAndLogin(url: string, store: Store, handle: string, device: string): Promise<string> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
  const e = await fetch(`${url}/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      code: enrollmentCode,
      device: { id: device, name: "t", signaturePublicKey: raw.toString("base64") },
      keyPackages: [],
    }),
  });
  assert.equal(e.status, 201, await e.text());
  const ch = await fetch(`${url}/v1/auth/challenge`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device }),
  });
  const { challenge } = (await ch.json()) as { challenge: string };
  const signature = sign(null, Buffer.from(`valise-login:${challenge}`), privateKey).toString("base64");
  const s = await fetch(`${url}/v1/auth/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device, challenge, signature }),
  });
  assert.equal(s.status, 201);
  return ((await s.json()) as { token: string }).token;
}

/** A push socket collecting frames. */
async function socket(url: string, token: string) {
  const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
  const frames: Record<string, unknown>[] = [];
  ws.on("message", (d: Buffer) => frames.push(JSON.parse(d.toString("utf8")) as Record<string, unknown>));
  const closed = new Promise<number>((r) => ws.once("close", (code: number) => r(code)));
  await new Promise<void>((ok, fail) => {
    ws.once("open", () => ok());
    ws.once("error", fail);
  });
  ws.send(JSON.stringify({ type: "auth", token }));
  const until = async (pred: (f: Record<string, unknown>) => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!frames.some(pred) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return frames.find(pred) ?? null;
  };
  assert.ok(await until((f) => f.type === "ready", 10_000), "socket ready");
  return { ws, frames, closed, until };
}

test(
  "the leader's process is SIGKILLed: the other node leads, and a client moved to it hears of the next directory change",
  {
    skip: SKIP,
    timeout: 120_000,
  },
  async () => {
    const db = await freshDb("postgres");
    const nats = (await startNats())!;
    const keyDir = mkdtempSync(join(tmpdir(), "valise-cluster-key-"));
    const dirs: string[] = [];
    const nodes: Awaited<ReturnType<typeof startServeProcess>>[] = [];
    let store: Store | undefined;
    try {
      loadOrCreateLogKey({ dataDir: keyDir, env: {} });
      const env = {
        VALISE_DATABASE_URL: db.databaseUrl!,
        VALISE_LOG_KEY: readFileSync(join(keyDir, "log-key"), "utf8").trim(),
      };
      const args = ["--nats", nats.url, "--blob-store", "pg", "--no-web", "--log-level", "info"];
      // One process first (it creates the schema and leads), then the second.
      for (let i = 0; i < 2; i++) {
        const dir = mkdtempSync(join(tmpdir(), `valise-cluster-node${i}-`));
        dirs.push(dir);
        nodes.push(await startServeProcess(dir, args, env));
      }
      const leads = (n: (typeof nodes)[number]) => n.output().includes(LEADER_LINE);
      const deadline = Date.now() + 15_000;
      while (!nodes.some(leads) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const leader = nodes.find(leads);
      assert.ok(leader, "one process leads");
      const other = nodes.find((n) => n !== leader)!;
      assert.equal(leads(other), false, "only one leads");

      store = await openStore({ dataDir: dirs[0]!, databaseUrl: db.databaseUrl });
      await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      for (const h of ["alice", "bob"])
        await store.directory.addUser({ handle: h, units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      const bob = await enrollAndLogin(leader.url, store, "bob", "d-bob0000001");
      const onLeader = await socket(leader.url, bob);

      // The killed node's socket ends without a close frame; the client goes to the other node (as a proxy would).
      leader.kill();
      assert.equal(await onLeader.closed, 1006);
      const moved = await socket(other.url, bob);
      const t0 = Date.now();
      while (!leads(other) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(leads(other), `the surviving process leads (${Date.now() - t0} ms after the kill)`);

      // The new leader signs checkpoints and announces them: a device enrolled through it reaches bob's moved socket.
      await enrollAndLogin(other.url, store, "alice", "d-alice00001");
      const size = await store.directory.log.size();
      const f = await moved.until((x) => x.type === "directory" && Number(x.size) >= size, 10_000);
      assert.ok(f, `directory frame on the surviving node: ${JSON.stringify(moved.frames)}`);
      const cps = await store.handle.db.selectFrom("directory_log_checkpoints").select(["size"]).execute();
      assert.ok(
        cps.some((c) => Number(c.size) === size),
        "the new leader signed the checkpoint",
      );
      assert.equal(new Set(cps.map((c) => c.size)).size, cps.length, "one checkpoint per size");
      moved.ws.close();
    } finally {
      for (const n of nodes) n.kill();
      await store?.close();
      await nats.stop();
      await db.dispose();
      for (const d of [...dirs, keyDir]) rmSync(d, { recursive: true, force: true });
    }
  },
);
