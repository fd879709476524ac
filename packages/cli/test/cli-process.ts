/** Process-level test support: run the `valise` CLI as a user would, and a `valise serve` child on 127.0.0.1. */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "@valise/server/testing/net";

const execFileP = promisify(execFile);
export const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));

/** The test's environment without VALISE_DATABASE_URL: these tests run the embedded SQLite server. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e = { ...process.env, ...extra };
  if (!("VALISE_DATABASE_URL" in extra)) delete e.VALISE_DATABASE_URL;
  return e;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  return execFileP(process.execPath, [CLI, ...args], {
    timeout: 60_000,
    env: cliEnv(env),
    maxBuffer: 64 * 1024 * 1024,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `valise serve --data DIR` on a free port and resolves once /healthz answers; `output()` is its stdout and
 * stderr (the banner is on stderr). */
export async function startServeProcess(
  dataDir: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  /** A given port (e.g. the one of a server this one restarts); default a free one. */
  fixedPort?: number,
): Promise<{ url: string; port: number; child: ChildProcess; output(): string; kill(): void }> {
  const port = fixedPort ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--data", dataDir, "--port", String(port), "--log-level", "warn", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: cliEnv(env) },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    // Up to 60 s: a loaded CI machine (tests run two at a time, each with servers and CLI processes) starts slowly.
    if (i > 1200 || child.exitCode !== null) {
      child.kill("SIGKILL"); // never left running after a failed start
      throw new Error(`valise serve did not start: ${out}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    child,
    output: () => out,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
