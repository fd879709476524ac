/**
 * A 1 GiB document round-trips through `valise serve` with flat memory: `valise doc put` and `valise doc get` run as
 * separate processes; their resident memory (and the server's) is sampled from /proc every 25 ms while they run, and
 * the peak must stay far below the file size. The output must hash equal to the input.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, cliEnv, runCli, startServeProcess } from "./cli-process.js";

const dir = mkdtempSync(join(tmpdir(), "valise-large-"));
const dataDir = join(dir, "data");
let server: { url: string; child: ChildProcess; kill(): void } | undefined;
after(() => {
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});
const SIZE = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Resident set size of a process in bytes (Linux /proc), or 0 once it is gone. */
function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs the CLI, sampling its RSS (and the server's); resolves with stdout and both peaks. */
async function run(args: string[]): Promise<{ stdout: string; peak: number; serverPeak: number }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let peak = 0;
  let serverPeak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(child.pid!));
    serverPeak = Math.max(serverPeak, rss(server!.child.pid!));
  }, 25);
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  clearInterval(timer);
  assert.equal(code, 0, stderr);
  return { stdout, peak, serverPeak };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const piece of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(piece as Buffer);
  return h.digest("hex");
}

test("a 1 GiB document round-trips with flat memory", { timeout: 300_000 }, async () => {
  const admin = (...a: string[]) => runCli(["admin", "--data", dataDir, ...a]);
  await admin("unit", "add", "HQ/ASIA-1");
  await admin("unit", "add", "EMB/BEIJING");
  const codes: Record<string, string> = {};
  for (const [h, u] of [
    ["jnovak", "HQ/ASIA-1"],
    ["pdvorak", "EMB/BEIJING"],
  ] as const) {
    const out = await admin("user", "add", h, "--unit", u, "--clearance", "CONFIDENTIAL/ASIA", "--json");
    codes[h] = (JSON.parse(out.stdout) as { enrollmentCode: string }).enrollmentCode;
  }
  server = await startServeProcess(dataDir);
  for (const h of ["jnovak", "pdvorak"])
    await runCli(["enroll", "--server", server.url, "--code", codes[h]!, "--profile", join(dir, h)]);

  // 1 GiB input: a random 1 MiB block with the block number stamped in, so no two chunks are equal.
  const input = join(dir, "big.bin");
  const block = randomBytes(MiB);
  const fd = openSync(input, "w");
  for (let i = 0; i < SIZE / MiB; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
  }
  closeSync(fd);
  const baseline = rss(server.child.pid!);

  const t0 = Date.now();
  const put = await run([
    "doc",
    "put",
    "--profile",
    join(dir, "jnovak"),
    "--to",
    "pdvorak",
    "--label",
    "CONFIDENTIAL/ASIA",
    input,
    "--json",
  ]);
  const putMs = Date.now() - t0;
  const { id } = JSON.parse(put.stdout) as { id: string };
  await run(["sync", "--profile", join(dir, "pdvorak"), "--json"]);
  const out = join(dir, "out.bin");
  const t1 = Date.now();
  const get = await run(["doc", "get", id, "--out", out, "--profile", join(dir, "pdvorak"), "--json"]);
  const getMs = Date.now() - t1;

  assert.equal(await sha256File(out), await sha256File(input), "the download is byte-identical");
  const mb = (n: number) => Math.round(n / MiB);
  console.log(
    `1 GiB: put ${putMs} ms (peak RSS ${mb(put.peak)} MiB), get ${getMs} ms (peak RSS ${mb(get.peak)} MiB); ` +
      `server peak RSS ${mb(Math.max(put.serverPeak, get.serverPeak))} MiB (idle ${mb(baseline)} MiB)`,
  );
  // Flat memory: a streamed 1 GiB transfer may not hold more than a few parts and chunks at once.
  assert.ok(put.peak < 400 * MiB, `doc put peaked at ${mb(put.peak)} MiB`);
  assert.ok(get.peak < 400 * MiB, `doc get peaked at ${mb(get.peak)} MiB`);
  assert.ok(Math.max(put.serverPeak, get.serverPeak) < baseline + 300 * MiB, "the server streams too");
});
