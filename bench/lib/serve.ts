/** Runs `valise serve` as a child process on 127.0.0.1 for benchmarks, with a fresh or given data directory. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@valise/server/testing/net";

/** bench/dist/lib/serve.js → packages/cli/bin/valise.js */
export const CLI = fileURLToPath(new URL("../../../packages/cli/bin/valise.js", import.meta.url));

export interface ServeProcess {
  url: string;
  /** Prometheus metrics (their own loopback listener). */
  metricsUrl: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** The last ~50–100 KB the process wrote to stderr (why it died, when it did). */
  stderr(): string;
  stop(): Promise<void>;
}

export function freshDataDir(prefix = "valise-bench-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts the server and resolves once /healthz answers (bounded by `timeoutMs`). */
export async function startServe(opts: {
  dataDir: string;
  port?: number;
  logLevel?: string;
  nodeArgs?: string[];
  timeoutMs?: number;
  /** Extra `valise serve` arguments (e.g. --login-rate). */
  args?: string[];
}): Promise<ServeProcess> {
  const port = opts.port ?? (await freePort());
  const metricsPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      CLI,
      "serve",
      "--data",
      opts.dataDir,
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--log-level",
      opts.logLevel ?? "warn",
      "--metrics-listen",
      `127.0.0.1:${metricsPort}`,
      ...(opts.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`valise serve exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`valise serve did not answer /healthz in time: ${stderr}`);
    }
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    port,
    dataDir: opts.dataDir,
    child,
    stderr: () => stderr,
    stop: (signal: NodeJS.Signals = "SIGTERM") =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.kill(signal);
      }),
  };
}
