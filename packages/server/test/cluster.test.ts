/**
 * Several server nodes on one PostgreSQL and one NATS (issue 18), in one process: blobs shared through the database
 * (an upload begun on one node goes on at another and downloads byte-identical from a third), a blob whose bytes
 * are on another node's disk answers 404 instead of crashing the node, pushes reach sockets on every node within a
 * second, alerts raised by the leader's detector reach an officer on another node, the leader's death hands its work
 * to another node (detection resumes from the stored position, no alert twice), and a NATS outage only delays
 * pushes (catch-up over HTTP meanwhile, a resync frame and pushes again once NATS is back).
 *
 * Needs PostgreSQL (VALISE_TEST_DATABASE_URL) and, for the NATS parts, a nats-server binary (on PATH, in /usr/sbin,
 * or VALISE_NATS_SERVER): without them these tests are skipped, saying why. CI has both (.ci/run).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";
import pg from "pg";
import { randomId } from "@valise/core";
import { PG_URL } from "./helpers/databases.js";
import { startTestCluster, type ClusterNode, type TestCluster } from "../src/testing/cluster.js";
import { startNats, natsServerBinary, type TestNats } from "../src/testing/nats.js";
import { call, commit, jsonMls, login, sendMessage, type BlobStatus, type Session } from "./helpers/content.js";

const NO_PG = PG_URL ? false : "no PostgreSQL: set VALISE_TEST_DATABASE_URL (CI does)";
const NO_NATS = NO_PG || (natsServerBinary() ? false : "no nats-server binary (apt-get install nats-server)");
// CI installs both (.ci/run): there a skip would hide the cluster tests.
if (process.env.CI === "true" && (NO_PG || NO_NATS))
  throw new Error(`cluster tests cannot run on CI: ${NO_PG || NO_NATS}`);

/** A WebSocket session on a node, collecting frames. */
class Socket {
  readonly frames: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d: Buffer) => {
      this.frames.push(JSON.parse(d.toString("utf8")) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(node: ClusterNode, as: Session): Promise<Socket> {
    const ws = new WebSocket(`${node.url.replace("http", "ws")}/v1/ws`);
    const s = new Socket(ws);
    await new Promise<void>((ok, fail) => {
      ws.once("open", () => ok());
      ws.once("error", fail);
    });
    ws.send(JSON.stringify({ type: "auth", token: as.token }));
    await s.frame((f) => f.type === "ready");
    return s;
  }
  /** The first frame matching `pred`, waiting up to `ms`; null if none came. */
  async frame(pred: (f: Record<string, unknown>) => boolean, ms = 10_000): Promise<Record<string, unknown> | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  close() {
    this.ws.close();
  }
}

async function setupUsers(node: ClusterNode) {
  const d = node.store.directory;
  await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  await d.addUnit("HQ/SEC", "SECRET/ASIA");
  await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
  await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
  await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
}

describe("cluster: blobs on several nodes", { skip: NO_PG }, () => {
  test("fs blob store on each node's own disk: a blob uploaded through node B answers 404 on node A, which keeps running", async () => {
    const c = await startTestCluster(2, { blobStore: "fs" });
    try {
      const [a, b] = c.nodes as [ClusterNode, ClusterNode];
      await setupUsers(a);
      const alice = await login(b.url, b.store, "alice", "d-alice00001");
      const bytes = new Uint8Array(randomBytes(70_000));
      const made = await call<BlobStatus>(b.url, alice, "POST", "/v1/blobs", { size: bytes.length });
      assert.equal(made.status, 201, made.text);
      const id = made.json.id;
      const half = await call<BlobStatus>(b.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(0, 30_000), {
        "upload-offset": "0",
      });
      assert.equal(half.status, 200, half.text);
      // Node A has no file for it: status and the next part answer 404 there (not a 500, not a crash).
      const st = await call(a.url, alice, "GET", `/v1/blobs/${id}/status`);
      assert.equal(st.status, 404, st.text);
      const part = await call(a.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(30_000), {
        "upload-offset": "30000",
      });
      assert.equal(part.status, 404, part.text);
      const rest = await call<BlobStatus>(b.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(30_000), {
        "upload-offset": "30000",
      });
      assert.equal(rest.json.complete, true, rest.text);
      const got = await call(a.url, alice, "GET", `/v1/blobs/${id}`);
      assert.equal(got.status, 404, got.text);
      const ranged = await call(a.url, alice, "GET", `/v1/blobs/${id}`, undefined, { range: "bytes=10-" });
      assert.equal(ranged.status, 404, ranged.text);
      assert.equal((await fetch(`${a.url}/healthz`)).status, 200, "node A still answers");
      const fromB = await fetch(`${b.url}/v1/blobs/${id}`, { headers: { authorization: `Bearer ${alice.token}` } });
      assert.deepEqual(new Uint8Array(await fromB.arrayBuffer()), bytes);
    } finally {
      await c.close();
    }
  });

  test("pg blob store: an upload begun on node A goes on at node B and downloads byte-identical from node C", async () => {
    const c = await startTestCluster(3, { blobStore: "pg" });
    try {
      const [a, b, cc] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
      await setupUsers(a);
      const alice = await login(a.url, a.store, "alice", "d-alice00001");
      const bob = await login(a.url, a.store, "bob", "d-bob0000001");
      const bytes = new Uint8Array(randomBytes(1_300_000)); // several 512 KiB chunks
      const made = await call<BlobStatus>(a.url, alice, "POST", "/v1/blobs", { size: bytes.length });
      const id = made.json.id;
      const p1 = await call<BlobStatus>(a.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(0, 600_000), {
        "upload-offset": "0",
      });
      assert.deepEqual([p1.status, p1.json.received], [200, 600_000], p1.text);
      // Node B knows how far it got; a part at the wrong offset is refused there; the right one completes it.
      const st = await call<BlobStatus>(b.url, alice, "GET", `/v1/blobs/${id}/status`);
      assert.deepEqual([st.status, st.json.received, st.json.complete], [200, 600_000, false], st.text);
      const wrong = await call(b.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(500_000), {
        "upload-offset": "500000",
      });
      assert.equal(wrong.status, 409, wrong.text);
      // Two nodes racing with the same part: one wins, the other is refused; the bytes are stored once.
      const race = await Promise.all(
        [b, cc].map((n) =>
          call<BlobStatus>(n.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(600_000, 900_000), {
            "upload-offset": "600000",
          }),
        ),
      );
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 409], race.map((r) => r.text).join(" "));
      const p2 = await call<BlobStatus>(b.url, alice, "PATCH", `/v1/blobs/${id}`, bytes.subarray(900_000), {
        "upload-offset": "900000",
      });
      assert.equal(p2.json.complete, true, p2.text);
      const got = await fetch(`${cc.url}/v1/blobs/${id}`, { headers: { authorization: `Bearer ${alice.token}` } });
      assert.equal(got.status, 200);
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
      const tail = await fetch(`${cc.url}/v1/blobs/${id}`, {
        headers: { authorization: `Bearer ${alice.token}`, range: "bytes=524000-" },
      });
      assert.equal(tail.status, 206);
      assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(524_000));
      // Not the owner's: refused on every node.
      assert.equal((await call(cc.url, bob, "GET", `/v1/blobs/${id}`)).status, 403);
      // Bytes gone from the database (an operator's mistake): 404 on a read, never a crash.
      await a.store.blobBytes.delete(id);
      assert.equal((await call(b.url, alice, "GET", `/v1/blobs/${id}`)).status, 404);
      assert.equal((await fetch(`${b.url}/healthz`)).status, 200);
    } finally {
      await c.close();
    }
  });
});

describe("cluster: limits held by every node", { skip: NO_PG }, () => {
  test("login attempts from one address are limited in total across nodes, not per node (also under concurrency)", async () => {
    const c = await startTestCluster(2, { blobStore: "pg", app: { loginRatePerMinute: 5 } });
    try {
      const [a, b] = c.nodes as [ClusterNode, ClusterNode];
      const challenge = (node: ClusterNode) =>
        fetch(`${node.url}/v1/auth/challenge`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ device: "d-nobody0001" }),
        }).then((r) => r.status);
      // 12 attempts from 127.0.0.1, half through each node, six at a time: a per-node limit would let 10 through.
      const statuses: number[] = [];
      for (let round = 0; round < 2; round++)
        statuses.push(...(await Promise.all([a, b, a, b, a, b].map((n) => challenge(n)))));
      assert.equal(statuses.filter((s) => s === 200).length, 5, `statuses: ${statuses.join(",")}`);
      assert.equal(statuses.filter((s) => s === 429).length, 7, `statuses: ${statuses.join(",")}`);
      // Another address is not affected: the bucket is per source (checked on the shared table itself).
      const pool = new pg.Pool({ connectionString: c.db.databaseUrl, max: 1 });
      try {
        const rows = await pool.query<{ key: string }>("SELECT key FROM rate_buckets WHERE key LIKE 'login:%'");
        assert.deepEqual(
          rows.rows.map((r) => r.key),
          ["login:127.0.0.1"],
        );
      } finally {
        await pool.end();
      }
    } finally {
      await c.close();
    }
  });
});

describe("cluster: pushes, alerts and the leader over NATS", { skip: NO_NATS }, () => {
  let nats: TestNats;
  let c: TestCluster;
  let a: ClusterNode, b: ClusterNode, cc: ClusterNode;
  let alice: Session, bob: Session, olga: Session;
  let conv: string;
  let epoch = 0;
  let n = 0;
  const idem = () => `k-${++n}-${Date.now()}`;

  before(async () => {
    nats = (await startNats())!;
    c = await startTestCluster(3, { nats: nats.url, mls: jsonMls, blobStore: "pg", logKey: true });
    [a, b, cc] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await setupUsers(a);
    alice = await login(a.url, a.store, "alice", "d-alice00001");
    bob = await login(cc.url, cc.store, "bob", "d-bob0000001");
    olga = await login(b.url, b.store, "olga", "d-olga000001");
    conv = randomId("c");
    const made = await call(a.url, alice, "POST", "/v1/conversations", { id: conv, label: "SECRET", kind: "group" });
    assert.equal(made.status, 201, made.text);
    const added = await commit(a.url, alice, conv, 0, { added: [bob.device] }, idem());
    assert.equal(added.status, 201, added.text);
    epoch = 1;
  });
  after(async () => {
    await c?.close();
    await nats?.stop();
  });

  test("a message sent through node A is pushed to a client on node C within a second", async () => {
    const sock = await Socket.open(cc, bob);
    try {
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const r = await sendMessage(a.url, alice, conv, epoch, idem());
        assert.equal(r.status, 201, r.text);
        const seq = (r.json as { seq: number }).seq;
        const f = await sock.frame((x) => x.type === "message" && x.seq === seq, 1000);
        assert.ok(f, `seq ${seq} pushed on node C within 1 s (${Date.now() - t0} ms)`);
        assert.equal(f.conversationId, conv);
      }
    } finally {
      sock.close();
    }
  });

  test("a device enrolled through node A: clients on every node are told the directory log grew, within a second", async () => {
    const socks = await Promise.all([Socket.open(a, bob), Socket.open(b, olga), Socket.open(cc, bob)]);
    try {
      const { enrollmentCode } = await a.store.directory.newEnrollmentCode("alice");
      const before = await a.store.directory.log.size();
      const t0 = Date.now();
      const r = await fetch(`${a.url}/v1/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          code: enrollmentCode,
          device: { id: "d-alice00002", name: "phone", signaturePublicKey: randomBytes(32).toString("base64") },
          keyPackages: [],
        }),
      });
      assert.equal(r.status, 201, await r.text());
      const size = await a.store.directory.log.size();
      assert.ok(size > before, "the enrolment is a directory log entry");
      for (const [i, s] of socks.entries()) {
        const f = await s.frame(
          (x) => x.type === "directory" && Number(x.size) >= size,
          Math.max(0, t0 + 1000 - Date.now()),
        );
        assert.ok(
          f,
          `node ${["A", "B", "C"][i]}: a directory frame of size ≥ ${size} within 1 s (${Date.now() - t0} ms): ${JSON.stringify(s.frames)}`,
        );
      }
      // One frame per grown checkpoint, not one per node: each socket got it once for this size.
      for (const s of socks) assert.equal(s.frames.filter((x) => x.type === "directory" && x.size === size).length, 1);
    } finally {
      for (const s of socks) s.close();
    }
  });

  test("an alert raised by the leader's detector reaches an officer on another node", async () => {
    const leader = c.leader();
    assert.ok(leader, "one node leads");
    const other = c.live().find((x) => x !== leader)!;
    const sock = await Socket.open(other, olga);
    try {
      // A canary marked by the officer and read by alice (through a third node): a critical alert at once.
      const id = await canaryRead(c.live().find((x) => x !== leader && x !== other)!);
      const f = await sock.frame((x) => x.type === "alert" && x.rule === "canary-touch" && x.actor === "bob");
      assert.ok(f, `alert pushed to the officer on ${other.name}: ${JSON.stringify(sock.frames)}`);
      assert.ok(String(f.reason).includes(id) || Array.isArray(f.events));
    } finally {
      sock.close();
    }
  });

  test("the leader's node dies: another takes over, detection resumes from its stored position, no alert twice", async () => {
    const old = c.leader()!;
    const before = await alertRows();
    // The leader's database sessions end (what its death looks like to PostgreSQL), then the node stops.
    const admin = new pg.Client({ connectionString: c.db.databaseUrl });
    await admin.connect();
    try {
      await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'valise-leader' AND datname = current_database()",
      );
    } finally {
      await admin.end();
    }
    await old.close();
    const survivors = c.live();
    const deadline = Date.now() + 10_000;
    while (!c.leader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const next = c.leader();
    assert.ok(next && next !== old, "another node leads");
    const sock = await Socket.open(survivors.find((x) => x !== next) ?? next, olga);
    try {
      await canaryRead(survivors[0]!, alice);
      const f = await sock.frame((x) => x.type === "alert" && x.rule === "canary-touch" && x.actor === "alice");
      assert.ok(f, "the new leader's detector alerted");
      await next.ctx.detector!.drain();
      const after = await alertRows();
      assert.equal(after.length, before.length + 1, JSON.stringify(after));
      const keys = after.map((r) => `${r.rule}/${r.actor}/${r.events}`);
      assert.equal(new Set(keys).size, keys.length, "no alert stored twice");
      // The detector's position is the audit log's end (nothing skipped, nothing processed twice).
      assert.equal(next.ctx.detector!.position, await next.store.audit.size());
      // Checkpoints: one root per size, whoever signed.
      const cps = await next.store.handle.db.selectFrom("directory_log_checkpoints").select(["size"]).execute();
      assert.equal(new Set(cps.map((x) => x.size)).size, cps.length);
    } finally {
      sock.close();
      // A third node again, for the NATS test.
      await c.addNode();
    }
  });

  test("NATS stopped: delivery goes on by catch-up; once it is back the sockets resync and pushes resume", async () => {
    const [x, y] = c.live().slice(-2) as [ClusterNode, ClusterNode];
    const bobSock = await Socket.open(y, bob);
    try {
      await nats.stop();
      const r = await sendMessage(x.url, alice, conv, epoch, idem());
      assert.equal(r.status, 201, r.text);
      const seq = (r.json as { seq: number }).seq;
      // Read over HTTP on bob's node meanwhile: the database has it.
      const list = await call<{ messages: { seq: number }[] }>(
        y.url,
        bob,
        "GET",
        `/v1/conversations/${conv}/messages?after=${seq - 1}`,
      );
      assert.equal(list.status, 200, list.text);
      assert.ok(
        list.json.messages.some((m) => m.seq === seq),
        list.text,
      );
      await nats.start();
      const rs = await bobSock.frame((f) => f.type === "resync", 15_000);
      assert.ok(rs, "a resync frame once NATS is back");
      for (const node of c.live()) assert.ok(await node.fanout!.ready(10_000));
      const r2 = await sendMessage(x.url, alice, conv, epoch, idem());
      const seq2 = (r2.json as { seq: number }).seq;
      const f = await bobSock.frame((q) => q.type === "message" && q.seq === seq2, 5_000);
      assert.ok(f, "pushed again over NATS");
    } finally {
      bobSock.close();
    }
  });

  /** A canary document marked by the officer and read by `reader` (one alert per account within 2 minutes). */
  async function canaryRead(via: ClusterNode, reader: Session = bob): Promise<string> {
    const blob = await upload(via, alice, new Uint8Array(randomBytes(100)));
    const id = randomId("f");
    const doc = await call(via.url, alice, "POST", "/v1/documents", {
      id,
      label: "SECRET",
      to: { kind: "unit", name: "HQ/ASIA-1" },
      blob,
    });
    assert.equal(doc.status, 201, doc.text);
    assert.equal((await call(via.url, olga, "PUT", `/v1/documents/${id}/canary`, { canary: true })).status, 200);
    assert.equal((await call(via.url, reader, "GET", `/v1/documents/${id}`)).status, 200);
    return id;
  }

  async function upload(via: ClusterNode, as: Session, bytes: Uint8Array): Promise<string> {
    const m = await call<BlobStatus>(via.url, as, "POST", "/v1/blobs", { size: bytes.length });
    const p = await call<BlobStatus>(via.url, as, "PATCH", `/v1/blobs/${m.json.id}`, bytes, { "upload-offset": "0" });
    assert.equal(p.status, 200, p.text);
    return m.json.id;
  }

  async function alertRows() {
    return c.live()[0]!.store.handle.db.selectFrom("alerts").select(["rule", "actor", "events"]).execute();
  }
});
