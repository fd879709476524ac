/**
 * Issue 19 operations: `valise admin backup` while the server runs (SQLite, separate processes), `valise admin
 * restore` into a new data directory (a non-empty one refused), the restored server starts, its directory log
 * verifies for the enrolled devices, the users log in and the messages sent before the backup are there.
 * Also `valise --version` / `valise version --json` and `valise taxii --help`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@valise/server/testing/net";
import { CLI, cliEnv, runCli } from "./cli-process.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = async (args: string[]) =>
  JSON.parse((await runCli([...args, "--json"])).stdout) as Record<string, unknown>;

/** `valise serve --data DIR --port PORT` (the same port after the restore: the profiles know the server's URL). */
async function serveOn(dataDir: string, port: number): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [CLI, "serve", "--data", dataDir, "--port", String(port), "--no-web"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: cliEnv({ VALISE_METRICS_TOKEN: undefined }),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 1200 || child.exitCode !== null) throw new Error(`valise serve did not start: ${stdout}${stderr}`);
    await sleep(50);
  }
  return { child, out: () => `${stdout}\u0000${stderr}` };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill("SIGTERM");
  });
}

async function syncedTexts(profile: string): Promise<string[]> {
  const s = await json(["sync", "--profile", profile]);
  return (s.items as { type: string; text?: string }[]).filter((x) => x.type === "message").map((x) => x.text ?? "");
}

test("version: valise --version and valise version --json", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  const line = (await runCli(["--version"])).stdout;
  assert.match(line, new RegExp(`^valise ${pkg.version.replace(/\./g, "\\.")} \\(node ${process.versions.node}, `));
  const v = await json(["version"]);
  assert.equal(v.valise, pkg.version);
  assert.equal(v.node, process.versions.node);
  const schema = v.schema as { latest: string; migrations: number };
  assert.match(schema.latest, /^[0-9]{3}_/);
  assert.ok(schema.migrations >= 11);
});

test("taxii --help shows the taxii usage, not the incident usage", async () => {
  const { stdout } = await runCli(["taxii", "--help"]);
  assert.match(stdout, /^usage: valise taxii token issue/);
  assert.doesNotMatch(stdout, /valise incident (create|list|export)/);
});

test(
  "backup while the server runs, restore into a new directory: logs verify, users log in, messages are there",
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "valise-backup-"));
    const dataA = join(dir, "data-a");
    const dataB = join(dir, "data-b");
    const backupDir = join(dir, "backup");
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let server = await serveOn(dataA, port);
    try {
      // Banners on stderr, stdout only JSON log lines.
      const [stdout, stderr] = server.out().split("\u0000") as [string, string];
      assert.match(stderr, /Valise is running at/);
      for (const l of stdout.split("\n").filter((x) => x.length > 0)) assert.doesNotThrow(() => JSON.parse(l), l);

      await runCli(["admin", "--data", dataA, "unit", "add", "HQ/ASIA-1"]);
      await runCli(["admin", "--data", dataA, "unit", "add", "EMB/BEIJING"]);
      const profiles: Record<string, string> = {};
      for (const [handle, unit] of [
        ["jnovak", "HQ/ASIA-1"],
        ["pdvorak", "EMB/BEIJING"],
      ] as const) {
        const bundle = await json(["admin", "--data", dataA, "user", "add", handle, "--unit", unit]);
        const file = join(dir, `${handle}.json`);
        writeFileSync(file, JSON.stringify(bundle));
        profiles[handle] = join(dir, handle);
        await runCli(["enroll", "--server", url, "--bundle", file, "--profile", profiles[handle]]);
      }
      await runCli(["send", "--profile", profiles.jnovak!, "--to", "pdvorak", "before the backup 1"]);
      await runCli(["send", "--profile", profiles.jnovak!, "--to", "pdvorak", "before the backup 2"]);

      // Online: the server keeps running during the backup.
      // The directory form: --out DIR/ (a trailing slash); backup-dr.test.ts covers the one-file archive.
      const b = await json(["admin", "backup", "--data", dataA, "--out", `${backupDir}/`]);
      assert.equal(b.database, "sqlite");
      assert.ok(existsSync(join(backupDir, "valise.sqlite")));
      assert.ok(existsSync(join(backupDir, "log-key")));
      assert.equal(statSync(join(backupDir, "log-key")).mode & 0o077, 0);
      assert.equal(statSync(backupDir).mode & 0o077, 0);
      const logs = b.logs as { directory: { size: number }; audit: { size: number } };
      assert.ok(logs.directory.size > 0 && logs.audit.size > 0);
      // A backup never overwrites: the same --out again is refused.
      await assert.rejects(runCli(["admin", "backup", "--data", dataA, "--out", backupDir]), /not empty/);
      // The one-file form beside it: a tar archive any tar lists, with the same files.
      const file = join(dir, "backup.tar");
      await runCli(["admin", "backup", "--data", dataA, "--out", file]);
      const listed = (await promisify(execFile)("tar", ["-tf", file])).stdout;
      for (const f of ["backup.json", "valise.sqlite", "log-key"]) assert.ok(listed.split("\n").includes(f), listed);
    } finally {
      await stop(server.child);
    }

    // Disaster: the data directory is lost. A non-empty target is refused; a new one takes the backup.
    rmSync(dataA, { recursive: true, force: true });
    mkdirSync(dataB);
    writeFileSync(join(dataB, "stray"), "x");
    await assert.rejects(runCli(["admin", "restore", "--from", backupDir, "--data", dataB]), /not empty/);
    rmSync(join(dataB, "stray"));
    const r = await json(["admin", "restore", "--from", backupDir, "--data", dataB]);
    const restoredLogs = r.logs as { directory: { size: number } };
    assert.ok(restoredLogs.directory.size > 0);

    server = await serveOn(dataB, port);
    try {
      // The devices accept the restored log (same key, same entries) and still log in; the messages are there.
      for (const profile of [join(dir, "jnovak"), join(dir, "pdvorak")]) {
        const st = await json(["log", "status", "--profile", profile]);
        assert.equal(st.ok, true, JSON.stringify(st));
        assert.equal(st.error, null);
      }
      const texts = await syncedTexts(join(dir, "pdvorak"));
      assert.deepEqual(texts, ["before the backup 1", "before the backup 2"]);
      await runCli(["send", "--profile", join(dir, "jnovak"), "--to", "pdvorak", "after the restore"]);
      assert.deepEqual(await syncedTexts(join(dir, "pdvorak")), ["after the restore"]);
    } finally {
      await stop(server.child);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
