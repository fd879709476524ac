/**
 * Log-key rotation (issue 19) with the CLI as separate processes: `valise serve`, a device enrolled with a bundle
 * (pinning key A), `valise admin log-key rotate` with the server stopped, the server started again: `valise log
 * status --json` follows the hand-over once (`keyChange`, the new `logKey`), `valise sync` shows the alert once, and
 * the device keeps working (a message flows). The retired key cannot run the server any more (the database pins the
 * new one), and a second rotation of a retired key is refused. The attacker cases (forged or replayed hand-overs,
 * unannounced keys) are in packages/client/test/log-key-handover.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@valise/server/testing/net";
import { CLI, cliEnv, runCli } from "./cli-process.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = async (args: string[], env: NodeJS.ProcessEnv = {}) =>
  JSON.parse((await runCli([...args, "--json"], env)).stdout) as Record<string, unknown>;

async function serveOn(dataDir: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, "serve", "--data", dataDir, "--port", String(port), "--no-web"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: cliEnv(env),
  });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return child;
    } catch {
      /* not yet */
    }
    if (i > 1200 || child.exitCode !== null) throw new Error(`valise serve did not start: ${err}`);
    await sleep(50);
  }
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill("SIGTERM");
  });
}

test(
  "valise admin log-key rotate: a device follows the signed hand-over once and keeps working",
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "valise-rotate-"));
    const data = join(dir, "data");
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    try {
      await runCli(["admin", "--data", data, "unit", "add", "HQ/ASIA-1"]);
      const profiles: Record<string, string> = {};
      let keyA = "";
      for (const h of ["ann", "bob"]) {
        const bundle = await json(["admin", "--data", data, "user", "add", h, "--unit", "HQ/ASIA-1"]);
        keyA = String(bundle.logKey);
        writeFileSync(join(dir, `${h}.json`), JSON.stringify(bundle));
        profiles[h] = join(dir, h);
      }
      let server = await serveOn(data, port);
      try {
        for (const h of ["ann", "bob"])
          await runCli(["enroll", "--server", url, "--bundle", join(dir, `${h}.json`), "--profile", profiles[h]!]);
        await runCli(["send", "--profile", profiles.ann!, "--to", "bob", "before the rotation"]);
        const st = await json(["log", "status", "--profile", profiles.ann!]);
        assert.equal(st.ok, true, JSON.stringify(st));
        assert.equal(st.logKey, keyA);
        assert.equal(st.keyChange, null);
      } finally {
        await stop(server);
      }

      const r = await json(["admin", "--data", data, "log-key", "rotate"]);
      assert.equal(r.oldKey, keyA);
      const keyB = String(r.newKey);
      assert.notEqual(keyB, keyA);
      assert.equal(keyB.split("+")[0], keyA.split("+")[0], "same origin, another key");
      assert.match(String(r.handover), /^valise-log-key-handover\/v1\n/);
      const retired = readdirSync(data).find((f) => f.startsWith("log-key.retired-"));
      assert.ok(retired, "the old key is kept aside");
      assert.equal((await json(["admin", "--data", data, "log", "key"])).vkey, keyB);
      // The retired key cannot sign for this database any more.
      await assert.rejects(
        runCli(["admin", "--data", data, "log", "key"], { VALISE_LOG_KEY: readFileSync(join(data, retired), "utf8") }),
        /is signed by .* not by the configured log key/,
      );

      server = await serveOn(data, port);
      try {
        const hs = (await (await fetch(`${url}/v1/log/directory/key-handovers`)).json()) as { handovers: string[] };
        assert.equal(hs.handovers.length, 1);
        // ann follows the hand-over: the pin change is reported once, in --json.
        const st = await json(["log", "status", "--profile", profiles.ann!]);
        assert.equal(st.ok, true, JSON.stringify(st));
        assert.equal(st.logKey, keyB);
        assert.deepEqual(st.keyChange, [
          { from: keyA, to: keyB, directorySize: r.directorySize, auditSize: r.auditSize },
        ]);
        const again = await json(["log", "status", "--profile", profiles.ann!]);
        assert.equal(again.keyChange, null);
        // bob learns it in sync: one alert, shown once; the message flows under the new key.
        await runCli(["send", "--profile", profiles.ann!, "--to", "bob", "after the rotation"]);
        const sync = JSON.stringify(await json(["sync", "--profile", profiles.bob!]));
        assert.match(sync, /signing key changed/);
        assert.match(sync, /after the rotation/);
        assert.doesNotMatch(JSON.stringify(await json(["sync", "--profile", profiles.bob!])), /signing key changed/);
        // ann's devices view verifies under the new key.
        assert.equal((await json(["log", "status", "--profile", profiles.bob!])).logKey, keyB);
      } finally {
        await stop(server);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
