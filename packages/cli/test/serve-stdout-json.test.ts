/**
 * Issue 19 part 7: `valise serve` writes only JSON log lines on standard output (for a log shipper); the banner and
 * warnings go to standard error. A real process with info logging answers a few requests (ok, 404, 401) and stops on
 * SIGTERM: every stdout line parses as a JSON object, request logs among them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@valise/server/testing/net";
import { CLI, cliEnv } from "./cli-process.js";

test("valise serve: stdout is JSON lines only, the banner is on stderr", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-stdout-json-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--data", dir, "--port", String(port), "--log-level", "info", "--metrics-listen", "off"],
    { stdio: ["ignore", "pipe", "pipe"], env: cliEnv() },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        /* not yet */
      }
      if (i > 1200 || child.exitCode !== null) throw new Error(`valise serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await fetch(`${url}/v1/no-such-route`)).status, 404);
    assert.equal((await fetch(`${url}/v1/users/someone`)).status, 401);
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(stderr, /Valise is running at/);
  assert.match(stderr, /directory log verifier key/);
  const lines = stdout.split("\n").filter((l) => l.length > 0);
  assert.ok(lines.length >= 3, `request logs expected on stdout, got: ${stdout}`);
  for (const l of lines) {
    let o: unknown;
    assert.doesNotThrow(() => (o = JSON.parse(l)), `not JSON on stdout: ${l}`);
    assert.equal(typeof o, "object");
  }
  assert.ok(
    lines.some((l) => l.includes('"statusCode":401')),
    "the 401 is logged",
  );
});
