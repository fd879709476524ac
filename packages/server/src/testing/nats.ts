/**
 * Test and bench support: a nats-server on a free loopback port (stoppable and restartable on the same port), or
 * null with the reason when there is no nats-server binary (VALISE_NATS_SERVER, else nats-server on PATH or in
 * /usr/sbin, where Debian's package puts it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect as tcp } from "node:net";
import { delimiter, join } from "node:path";
import { freePort } from "./net.js";

export function natsServerBinary(): string | null {
  const env = process.env.VALISE_NATS_SERVER;
  if (env) return existsSync(env) ? env : null;
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"]) {
    const p = join(dir, "nats-server");
    if (dir && existsSync(p)) return p;
  }
  return null;
}

export interface TestNats {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

export async function startNats(): Promise<TestNats | null> {
  const bin = natsServerBinary();
  if (!bin) return null;
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const start = async () => {
    const args = ["-a", "127.0.0.1", "-p", String(port)];
    proc = spawn(bin, args, { stdio: "ignore" });
    const p = proc;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`nats-server exited (${p.exitCode})`);
      if (await listening(port)) return;
      if (Date.now() > deadline) throw new Error("nats-server did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((done) => {
      p.once("exit", () => done());
      p.kill("SIGKILL");
    });
  };
  await start();
  process.once("exit", () => {
    proc?.kill("SIGKILL");
  });
  return { url: `nats://127.0.0.1:${port}`, port, stop, start };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcp(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
