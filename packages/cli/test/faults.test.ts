/**
 * The fault suite (issue 20): one profile in several processes, a CLI killed between sending and saving, PostgreSQL
 * restarted and stopped under load, a full disk, an upload across a server restart, an upload resumed after the CLI
 * was killed, an abandoned upload reclaimed. Everything is real processes on loopback: `valise serve` children, CLI
 * children, a private throwaway PostgreSQL cluster (skipped with a message where initdb cannot run) and a tiny tmpfs
 * (skipped where mount is not allowed). Each scenario prints its numbers (`# …` lines): acknowledged / stored /
 * lost, 503s and 500s seen, recovery times.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import SQLite from "better-sqlite3";
import { MemoryKeyStore, ValiseClient, type ReceivedItem } from "@valise/client";
import { setCryptoProvider } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { freePort } from "@valise/server/testing/net";
import { CLI, cliEnv } from "./cli-process.js";

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const root = mkdtempSync(join(tmpdir(), "valise-faults-"));
const children = new Set<ChildProcess>();
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const f of cleanups.reverse()) {
    try {
      f();
    } catch {
      /* best effort */
    }
  }
  rmSync(root, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------------ process helpers

interface Serve {
  url: string;
  port: number;
  child: ChildProcess;
  stderr(): string;
}

async function serve(dataDir: string, port: number, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<Serve> {
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--data", dataDir, "--port", String(port), "--log-level", "warn", "--no-web", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: cliEnv(env) },
  );
  children.add(child);
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 2400 || child.exitCode !== null)
      throw new Error(`valise serve did not start (exit ${child.exitCode}): ${err}`);
    await sleep(25);
  }
  return { url, port, child, stderr: () => err };
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill("SIGKILL");
  });
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  return execFileP(process.execPath, [CLI, ...args], { timeout: 90_000, env: cliEnv(env), maxBuffer: 1 << 26 });
}

/** A CLI child whose exit (code, signal, output) is awaited later. */
function cliChild(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: cliEnv(env) });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => child.once("exit", (code, signal) => resolve({ code, signal, stdout: out, stderr: err })),
  );
  return { child, done };
}

async function adminJson(dataDir: string, env: NodeJS.ProcessEnv, ...args: string[]) {
  const { stdout } = await cli(["admin", "--data", dataDir, ...args, "--json"], env);
  return JSON.parse(stdout) as Record<string, unknown>;
}

async function syncJson(profile: string): Promise<ReceivedItem[]> {
  const { stdout } = await cli(["sync", "--profile", profile, "--json"]);
  return (JSON.parse(stdout) as { items: ReceivedItem[] }).items;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

/** Files under DIR/blobs (the server's FsBlobStore): blob id → size. */
function blobFiles(dataDir: string): Map<string, number> {
  const out = new Map<string, number>();
  const base = join(dataDir, "blobs");
  if (!existsSync(base)) return out;
  for (const sub of readdirSync(base))
    for (const f of readdirSync(join(base, sub))) out.set(f, statSync(join(base, sub, f)).size);
  return out;
}

function randomFile(path: string, bytes: number): void {
  const fd = openSync(path, "w");
  for (let n = 0; n < bytes; n += 1 << 20) writeSync(fd, randomBytes(Math.min(1 << 20, bytes - n)));
  closeSync(fd);
}

// ------------------------------------------------------------------------------------ one server, CLI profiles

const cliData = join(root, "cli-data");
let cliServer: Serve;
const alice = join(root, "alice");
const bob = join(root, "bob");

async function cliWorld(): Promise<void> {
  if (cliServer) return;
  cliServer = await serve(cliData, await freePort());
  await adminJson(cliData, {}, "unit", "add", "HQ/FAULT");
  const a = await adminJson(cliData, {}, "user", "add", "alice", "--unit", "HQ/FAULT");
  const b = await adminJson(cliData, {}, "user", "add", "bob", "--unit", "HQ/FAULT");
  await cli(["enroll", "--server", cliServer.url, "--code", String(a.enrollmentCode), "--profile", alice]);
  await cli(["enroll", "--server", cliServer.url, "--code", String(b.enrollmentCode), "--profile", bob]);
}

function messages(items: ReceivedItem[]): string[] {
  return items.filter((i) => i.type === "message").map((i) => i.text);
}
function alerts(items: ReceivedItem[]): string[] {
  return items.filter((i) => i.type === "alert").map((i) => i.text);
}

test("N parallel CLI sends on one profile: all acknowledged, all readable, no ratchet generation reused", async () => {
  await cliWorld();
  const N = 6;
  const runs = Array.from({ length: N }, (_, i) =>
    cliChild(["send", "--profile", alice, "--to", "bob", `parallel ${i}`]),
  );
  const results = await Promise.all(runs.map((r) => r.done));
  for (const r of results) assert.equal(r.code, 0, `a send failed: ${r.stderr}`);
  const waited = results.filter((r) => /in use by process \d+/.test(r.stderr)).length;
  const items = await syncJson(bob);
  const got = messages(items).filter((t) => t.startsWith("parallel "));
  console.log(
    `# parallel CLI sends: ${N} acknowledged, ${got.length} readable by bob, ${N - got.length} lost; ` +
      `${waited} waited for the profile lock`,
  );
  assert.deepEqual(
    alerts(items),
    [],
    "bob refused nothing (a reused generation is refused: 'Desired gen in the past')",
  );
  assert.deepEqual([...got].sort(), Array.from({ length: N }, (_, i) => `parallel ${i}`).sort());
  assert.ok(waited >= 1, "at least one process said it waits for the profile");
  assert.deepEqual(
    readdirSync(alice).filter((f) => f.endsWith(".tmp") || f.startsWith("profile.lock")),
    [],
    "no temporary file or lock left behind",
  );
});

test("profile lock: --no-wait fails clearly while another live process holds it; a dead holder's lock is recovered", async () => {
  await cliWorld();
  const lock = join(alice, "profile.lock");
  // Held by this (live) test process.
  writeFileSync(
    lock,
    JSON.stringify({
      pid: process.pid,
      host: hostname(),
      start: null,
      nonce: "test-holder",
      command: "test",
      since: 0,
    }),
  );
  try {
    await assert.rejects(cli(["send", "--profile", alice, "--to", "bob", "--no-wait", "blocked"]), (e: unknown) => {
      const err = e as { code?: number; stderr?: string };
      assert.equal(err.code, 1);
      assert.match(err.stderr ?? "", new RegExp(`in use by process ${process.pid}`));
      return true;
    });
    // Without --no-wait the send waits (and says so) until the holder lets go.
    const waiting = cliChild(["send", "--profile", alice, "--to", "bob", "after wait"]);
    let stderr = "";
    waiting.child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    for (const end = Date.now() + 30_000; !/waiting for it to finish/.test(stderr); await sleep(50))
      if (Date.now() > end || waiting.child.exitCode !== null)
        assert.fail(`the second process did not wait: ${stderr}`);
    await sleep(500);
    assert.equal(waiting.child.exitCode, null, "still waiting for the lock");
    unlinkSync(lock);
    const r = await waiting.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /waiting for it to finish/);
  } finally {
    rmSync(lock, { force: true });
  }
  // A lock left by a process that is gone (kill -9): recovered at once.
  const dead = spawn(process.execPath, ["-e", ""]);
  await new Promise((r) => dead.once("exit", r));
  writeFileSync(
    lock,
    JSON.stringify({ pid: dead.pid, host: hostname(), start: null, nonce: "dead-holder", command: "send", since: 0 }),
  );
  const t0 = Date.now();
  await cli(["send", "--profile", alice, "--to", "bob", "--no-wait", "after stale"]);
  console.log(`# stale lock of a dead process recovered; the send took ${Date.now() - t0} ms`);
  const got = messages(await syncJson(bob));
  assert.ok(got.includes("after wait") && got.includes("after stale"));
  assert.ok(!got.includes("blocked"), "the refused send sent nothing");
});

test("kill -9 of the CLI after the server acknowledged, before the send returned: no generation reused, no duplicate", async () => {
  await cliWorld();
  const killed = cliChild(["send", "--profile", alice, "--to", "bob", "killed after post"], {
    VALISE_TEST_KILL_AFTER_POST: "1",
  });
  const k = await killed.done;
  assert.equal(k.signal, "SIGKILL", `the hook killed the CLI (${k.stderr})`);
  await cli(["send", "--profile", alice, "--to", "bob", "next send"]);
  await cli(["send", "--profile", alice, "--to", "bob", "and another"]);
  const items = await syncJson(bob);
  const got = messages(items);
  assert.deepEqual(alerts(items), [], "bob refused nothing");
  assert.deepEqual(
    got.filter((t) => ["killed after post", "next send", "and another"].includes(t)),
    ["killed after post", "next send", "and another"],
    "each message once, in order (the outbox retry of the killed send was recognised by its idempotency key)",
  );
});

// --------------------------------------------------------------------------------------------- uploads

async function waitForBlobBytes(dataDir: string, before: Set<string>, min: number, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    for (const [id, size] of blobFiles(dataDir)) if (!before.has(id) && size >= min) return id;
    if (Date.now() > end) throw new Error("no upload started");
    await sleep(5);
  }
}

test("an upload across a server restart completes byte-identical; doc put --resume continues after the CLI was killed", async () => {
  await cliWorld();
  const size = 20 * 1024 * 1024 + 12345;
  const file = join(root, "big.bin");
  randomFile(file, size);
  const want = sha256(file);

  // 1. The server is killed mid-upload and comes back 2 s later on the same port and data directory.
  const before = new Set(blobFiles(cliData).keys());
  const put = cliChild(["doc", "put", "--profile", alice, "--to", "bob", "--label", "UNCLASSIFIED", file, "--json"]);
  const blob = await waitForBlobBytes(cliData, before, 1);
  await killHard(cliServer.child);
  const heldAtKill = blobFiles(cliData).get(blob) ?? 0;
  const killedAt = Date.now();
  await sleep(2000);
  cliServer = await serve(cliData, cliServer.port);
  const r = await put.done;
  assert.equal(r.code, 0, `doc put failed across the restart: ${r.stderr}`);
  assert.match(r.stderr, /the server cannot store or read right now; nothing was lost, retrying/);
  const doc = JSON.parse(r.stdout) as { id: string };
  console.log(
    `# upload across a server restart: ${size} bytes, server killed at ${heldAtKill} bytes on disk, ` +
      `CLI finished ${Date.now() - killedAt} ms after the kill`,
  );
  assert.ok(heldAtKill < size, "the server was killed before the upload completed");
  const out = join(root, "big.out");
  await cli(["doc", "get", doc.id, "--profile", bob, "--out", out]);
  assert.equal(sha256(out), want, "byte-identical");

  // 2. The CLI itself is killed mid-upload; `doc put --resume FILE` continues from the server's byte count.
  const before2 = new Set(blobFiles(cliData).keys());
  const put2 = cliChild(["doc", "put", "--profile", alice, "--to", "bob", "--label", "UNCLASSIFIED", file]);
  const blob2 = await waitForBlobBytes(cliData, before2, 8 * 1024 * 1024);
  await killHard(put2.child);
  const held = blobFiles(cliData).get(blob2) ?? 0;
  assert.ok(held < size, "the CLI was killed before the upload completed");
  const listed = await cli(["doc", "put", "--resume", "--profile", alice, "--json"]);
  assert.equal((JSON.parse(listed.stdout) as { uploads: unknown[] }).uploads.length, 1);
  const resumed = await cli(["doc", "put", "--resume", "--profile", alice, file, "--json"]);
  const doc2 = JSON.parse(resumed.stdout) as { id: string; resumed: boolean };
  assert.equal(doc2.resumed, true);
  console.log(`# doc put --resume: CLI killed at ${held} of ${size} plaintext bytes uploaded, resumed to the end`);
  const out2 = join(root, "big2.out");
  await cli(["doc", "get", doc2.id, "--profile", bob, "--out", out2]);
  assert.equal(sha256(out2), want, "byte-identical after --resume");
  const after = await cli(["doc", "put", "--resume", "--profile", alice, "--json"]);
  assert.deepEqual((JSON.parse(after.stdout) as { uploads: unknown[] }).uploads, [], "nothing left to resume");
});

test("an abandoned upload is reclaimed after --upload-ttl, and audited", async () => {
  await cliWorld();
  await killHard(cliServer.child);
  cliServer = await serve(cliData, cliServer.port, {}, ["--upload-ttl", "3s"]);
  const file = join(root, "abandoned.bin");
  randomFile(file, 12 * 1024 * 1024);
  const before = new Set(blobFiles(cliData).keys());
  const put = cliChild(["doc", "put", "--profile", alice, "--to", "bob", "--label", "UNCLASSIFIED", file]);
  const blob = await waitForBlobBytes(cliData, before, 1);
  await killHard(put.child);
  const bytes = blobFiles(cliData).get(blob) ?? 0;
  const t0 = Date.now();
  while (blobFiles(cliData).has(blob)) {
    if (Date.now() - t0 > 10_000) assert.fail("the abandoned upload was not reclaimed within 10 s");
    await sleep(100);
  }
  console.log(`# abandoned upload (${bytes} bytes on disk) reclaimed ${Date.now() - t0} ms after the CLI was killed`);
  await assert.rejects(cli(["doc", "put", "--resume", "--profile", alice, file]), /no blob|not_found/);
  const db = new SQLite(join(cliData, "valise.sqlite"), { readonly: true });
  try {
    const rows = db
      .prepare("select actor, action, object from audit_log_entries where action = 'blob.expire' and object = ?")
      .all(blob) as { actor: string }[];
    assert.equal(rows.length, 1, "one blob.expire audit event");
    assert.equal(rows[0]!.actor, "server");
  } finally {
    db.close();
  }
});

// ------------------------------------------------------------------------- load, outages, numbers (SQLite, pg)

interface Load {
  acked: { conv: string; text: string; seq: number }[];
  failed: number;
  statuses: Map<number, number>;
  /** Time of the first and last non-200 status, and of the first 200 after an outage. */
  log: { t: number; status: number }[];
  stop(): Promise<void>;
}

/** `lanes` senders (alice-i → bob, one conversation each) sending back to back, and `probes` readers. */
async function startLoad(
  senders: ValiseClient[],
  convs: string[],
  prober: ValiseClient,
  probes: number,
  url: string,
): Promise<Load> {
  let running = true;
  const acked: Load["acked"] = [];
  const statuses = new Map<number, number>();
  const log: Load["log"] = [];
  let failed = 0;
  const lanes = senders.map(async (c, i) => {
    for (let n = 0; running; n++) {
      const text = `lane ${i} #${n}`;
      try {
        const r = await c.sendText(convs[i]!, text);
        acked.push({ conv: convs[i]!, text, seq: r.seq });
      } catch {
        failed++;
      }
    }
  });
  const token = prober.transport.token!;
  const probeLoops = Array.from({ length: probes }, async () => {
    while (running) {
      let status = 0;
      try {
        const r = await fetch(`${url}/v1/conversations`, { headers: { authorization: `Bearer ${token}` } });
        status = r.status;
        await r.arrayBuffer();
      } catch {
        status = -1; // connection refused/reset: the process is down
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      log.push({ t: Date.now(), status });
      if (status !== 200) await sleep(20);
    }
  });
  return {
    acked,
    get failed() {
      return failed;
    },
    statuses,
    log,
    async stop() {
      running = false;
      await Promise.all([...lanes, ...probeLoops]);
    },
  };
}

async function loadWorld(url: string, dataDir: string, env: NodeJS.ProcessEnv, lanes: number) {
  setCryptoProvider(nodeCryptoProvider);
  await adminJson(dataDir, env, "unit", "add", "HQ/LOAD");
  const enroll = async (handle: string) => {
    const u = await adminJson(dataDir, env, "user", "add", handle, "--unit", "HQ/LOAD");
    return ValiseClient.enroll({ serverUrl: url, code: String(u.enrollmentCode), store: new MemoryKeyStore() });
  };
  const receiver = await enroll("bob");
  const senders: ValiseClient[] = [];
  const convs: string[] = [];
  for (let i = 0; i < lanes; i++) {
    const s = await enroll(`alice${i}`);
    senders.push(s);
    convs.push((await s.send("bob", "hello")).conversation);
  }
  await receiver.sync();
  await receiver.login();
  return { receiver, senders, convs };
}

async function waitReady(srv: Serve, since: number, ms = 30_000): Promise<number> {
  const url = srv.url;
  for (;;) {
    if (srv.child.exitCode !== null || srv.child.signalCode !== null)
      throw new Error(`the server process died: ${srv.stderr().slice(-1500)}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return Date.now() - since;
    } catch {
      /* down */
    }
    if (Date.now() - since > ms) throw new Error("not ready again");
    await sleep(20);
  }
}

/** Every acknowledged message is in bob's decrypted log: returns [stored, lost]. */
async function verifyStored(receiver: ValiseClient, load: Load): Promise<{ stored: number; lost: number }> {
  const items = await receiver.sync();
  const seen = new Set(messages(items));
  const lost = load.acked.filter((a) => !seen.has(a.text));
  assert.deepEqual(alerts(items), [], "the receiver refused nothing");
  return { stored: load.acked.length - lost.length, lost: lost.length };
}

function pgBin(): string | null {
  try {
    const dirs = readdirSync("/usr/lib/postgresql")
      .map((v) => `/usr/lib/postgresql/${v}/bin`)
      .filter((d) => existsSync(`${d}/initdb`))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    return dirs.at(-1) ?? null;
  } catch {
    return null;
  }
}

test("PostgreSQL restarted, then stopped for 10 s under load: server alive, 503 not 500, nothing acknowledged lost, recovery without restart", async (t) => {
  const bin = pgBin();
  if (!bin || process.getuid?.() !== 0) {
    t.skip(`no PostgreSQL initdb here (or not root to run it as postgres): ${bin ?? "no /usr/lib/postgresql/*/bin"}`);
    return;
  }
  const pgDir = mkdtempSync(join(tmpdir(), "valise-faults-pg-"));
  const pgPort = await freePort();
  chownSync(pgDir, Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), 0);
  const asPg = (cmd: string) => execFileP("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { timeout: 60_000 });
  const ctl = (args: string) => asPg(`${bin}/pg_ctl -D ${pgDir}/data ${args}`);
  cleanups.push(() => {
    try {
      execFileSync("su", ["postgres", "-s", "/bin/sh", "-c", `${bin}/pg_ctl -D ${pgDir}/data -m immediate stop`], {
        stdio: "ignore",
      });
    } catch {
      /* not running */
    }
    rmSync(pgDir, { recursive: true, force: true });
  });
  try {
    await asPg(`${bin}/initdb -D ${pgDir}/data -A trust -U valise >/dev/null`);
  } catch (e) {
    t.skip(`initdb failed here, PostgreSQL faults not tested: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  const startPg = () =>
    ctl(`-o '-p ${pgPort} -k ${pgDir} -c listen_addresses=127.0.0.1' -l ${pgDir}/log -w start >/dev/null`);
  await startPg();
  await asPg(`${bin}/createdb -h 127.0.0.1 -p ${pgPort} -U valise valise_faults`);
  const env = { VALISE_DATABASE_URL: `postgres://valise@127.0.0.1:${pgPort}/valise_faults` };
  const dataDir = join(root, "pg-data");
  const srv = await serve(dataDir, await freePort(), env);
  const { receiver, senders, convs } = await loadWorld(srv.url, dataDir, env, 2);

  const load = await startLoad(senders, convs, receiver, 12, srv.url);
  await sleep(1500);
  const restartAt = Date.now();
  await ctl("-m fast -w restart >/dev/null");
  const restartReady = await waitReady(srv, restartAt);
  await sleep(1000);
  await ctl("-m fast -w stop >/dev/null");
  const stoppedAt = Date.now();
  await sleep(4000);
  const health = await fetch(`${srv.url}/healthz`);
  const ready = await fetch(`${srv.url}/readyz`);
  const readyBody = (await ready.json()) as { code?: string };
  assert.equal(health.status, 200, "/healthz: the process is alive");
  assert.equal(ready.status, 503, "/readyz: not ready while PostgreSQL is down");
  assert.equal(ready.headers.get("retry-after"), "2");
  assert.equal(readyBody.code, "store_error");
  const during = await fetch(`${srv.url}/v1/conversations`, {
    headers: { authorization: `Bearer ${receiver.transport.token!}` },
  });
  assert.equal(during.status, 503);
  assert.ok(during.headers.get("retry-after"));
  assert.equal(((await during.json()) as { code: string }).code, "store_error");
  await sleep(10_000 - (Date.now() - stoppedAt));
  const startedAt = Date.now();
  await startPg();
  const recovery = await waitReady(srv, startedAt);
  await sleep(1500);
  await load.stop();
  assert.equal(srv.child.exitCode, null, `the server process is alive: ${srv.stderr().slice(-2000)}`);
  assert.equal(srv.child.signalCode, null);
  const { stored, lost } = await verifyStored(receiver, load);
  const s = Object.fromEntries(load.statuses);
  console.log(
    `# PostgreSQL: ${load.acked.length} acknowledged, ${stored} stored, ${lost} lost, ${load.failed} sends failed; ` +
      `probe statuses ${JSON.stringify(s)}; ready ${restartReady} ms after pg_ctl restart began, ` +
      `${recovery} ms after PostgreSQL was started again (10 s stopped)`,
  );
  assert.equal(lost, 0);
  assert.equal(load.failed, 0, "every send succeeded through its retries");
  assert.ok((s[503] ?? 0) > 0, "503s during the outage");
  assert.equal(s[500] ?? 0, 0, "no 500");
  assert.equal(s[-1] ?? 0, 0, "the server never stopped answering");
  await killHard(srv.child);
});

test("a full disk under load (SQLite on a tiny tmpfs): 503, readiness false, recovery, nothing acknowledged lost", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("not root: cannot mount a tmpfs to fill");
    return;
  }
  const mnt = join(root, "tmpfs");
  mkdirSync(mnt);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", mnt], { stdio: "ignore" });
  } catch (e) {
    t.skip(`mount -t tmpfs is not allowed here, disk-full not tested: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  cleanups.push(() => execFileSync("umount", ["-l", mnt], { stdio: "ignore" }));
  const dataDir = join(mnt, "data");
  const srv = await serve(dataDir, await freePort());
  const { receiver, senders, convs } = await loadWorld(srv.url, dataDir, {}, 2);
  const load = await startLoad(senders, convs, receiver, 6, srv.url);
  await sleep(1000);
  // Fill the file system.
  const filler = join(mnt, "filler");
  const fd = openSync(filler, "w");
  for (let piece = 1 << 20; piece >= 512;) {
    try {
      writeSync(fd, new Uint8Array(piece));
    } catch {
      piece >>= 1;
    }
  }
  closeSync(fd);
  const fullAt = Date.now();
  await sleep(3000);
  const ready = await fetch(`${srv.url}/readyz`);
  const readyBody = (await ready.json()) as { disk?: boolean };
  const health = await fetch(`${srv.url}/healthz`);
  const sentDuring = load.acked.length;
  unlinkSync(filler);
  const freedAt = Date.now();
  const recovery = await waitReady(srv, freedAt);
  await sleep(1000);
  await load.stop();
  assert.equal(health.status, 200, "/healthz: alive");
  assert.equal(ready.status, 503, "/readyz: not ready with the disk full");
  assert.equal(readyBody.disk, false);
  assert.equal(srv.child.exitCode, null, "the server process is alive");
  const { stored, lost } = await verifyStored(receiver, load);
  const s = Object.fromEntries(load.statuses);
  console.log(
    `# SQLite, disk full for ${freedAt - fullAt} ms: ${load.acked.length} acknowledged (${sentDuring} before the disk ` +
      `was freed), ${stored} stored, ${lost} lost, ${load.failed} sends failed; probe statuses ${JSON.stringify(s)}; ` +
      `ready ${recovery} ms after space was freed`,
  );
  assert.equal(lost, 0);
  assert.equal(load.failed, 0);
  assert.ok((s[503] ?? 0) > 0, "503s while the disk was full");
  assert.equal(s[500] ?? 0, 0, "no 500");
  assert.equal(s[-1] ?? 0, 0, "the server never stopped answering");
  await killHard(srv.child);
});
