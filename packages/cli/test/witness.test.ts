/**
 * Witnesses end to end with real processes on 127.0.0.1: `valise witness init` and two `valise witness serve`, one
 * `valise serve --witness URL=VKEY ×2 --witness-quorum 2`, directory changes by `valise admin`. The server publishes
 * only checkpoints both witnesses cosigned (verifyCheckpointQuorum); with one witness killed (kill -9) nothing new is
 * published; the witness restarts on its state directory, refuses a rollback and a fork signed with the real log key,
 * and publication resumes.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  formatCheckpoint,
  parseCheckpoint,
  parseCosignatureVerifierKey,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  signNote,
  verifyCheckpointQuorum,
  type NoteVerifier,
} from "@valise/core";
import { freePort } from "@valise/server/testing/net";

const execFileP = promisify(execFile);
const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "valise-witness-cli-"));
const dataDir = join(dir, "server");
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function valise(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(process.execPath, [CLI, ...args], { timeout: 20_000 });
  return stdout;
}

/** Spawn a long-running `valise …` and wait until `${url}/healthz` answers. */
async function start(url: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`valise ${args[0]} exited with ${child.exitCode}: ${out}`);
    if (Date.now() > deadline) throw new Error(`valise ${args[0]} did not come up: ${out}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return child;
    } catch {
      /* not yet listening */
    }
    await sleep(50);
  }
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

const sizeOf = (note: string) => parseCheckpoint(note.slice(0, note.lastIndexOf("\n\n") + 1)).size;

test(
  "valise serve publishes only quorum-cosigned checkpoints; witnesses keep their state across kill -9",
  { timeout: 180_000 },
  async () => {
    // Witness keys: printed verifier keys, 0600 files, never overwritten.
    const keys: { file: string; vkey: string; verifier: NoteVerifier }[] = [];
    for (const n of [1, 2]) {
      const file = join(dir, `w${n}.key`);
      const out = JSON.parse(
        await valise("witness", "init", "--key", file, "--name", `witness.test/w${n}`, "--json"),
      ) as {
        vkey: string;
      };
      assert.equal(statSync(file).mode & 0o777, 0o600);
      keys.push({ file, vkey: out.vkey, verifier: parseCosignatureVerifierKey(out.vkey) });
    }
    await assert.rejects(valise("witness", "init", "--key", keys[0]!.file), /never overwritten/);
    assert.match(await valise("witness", "--help"), /add-checkpoint/);

    const logVkey = (JSON.parse(await valise("admin", "--data", dataDir, "log", "key", "--json")) as { vkey: string })
      .vkey;
    const logV = parseNoteVerifierKey(logVkey);
    const witnessArgs = (n: number, port: number) => [
      "witness",
      "serve",
      "--key",
      keys[n]!.file,
      "--log-key",
      logVkey,
      "--state",
      join(dir, `w${n + 1}-state`),
      "--port",
      String(port),
      "--log-level",
      "warn",
    ];
    const wPorts = [await freePort(), await freePort()];
    const wUrls = wPorts.map((p) => `http://127.0.0.1:${p}`);
    const w1 = await start(wUrls[0]!, witnessArgs(0, wPorts[0]!));
    let w2 = await start(wUrls[1]!, witnessArgs(1, wPorts[1]!));
    // A second witness process on the same state directory is refused.
    await assert.rejects(valise(...witnessArgs(1, await freePort())), (e: { stderr?: string }) =>
      /in use by process/.test(e.stderr ?? ""),
    );

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = await start(url, [
      "serve",
      "--data",
      dataDir,
      "--port",
      String(port),
      "--log-level",
      "warn",
      "--witness",
      `${wUrls[0]}=${keys[0]!.vkey}`,
      "--witness",
      `${wUrls[1]}=${keys[1]!.vkey}`,
      "--witness-quorum",
      "2",
    ]);
    const verifiers = keys.map((k) => k.verifier);
    const published = async () => {
      const r = await fetch(`${url}/v1/log/directory/checkpoint`);
      return r.status === 404 ? undefined : r.text();
    };
    const witnessed = async (n: number) => {
      const origin = logV.name;
      const r = await fetch(`${wUrls[n]}/${createHash("sha256").update(origin).digest("hex")}/checkpoint`);
      return r.ok ? sizeOf(await r.text()) : 0;
    };
    async function waitFor(pred: () => Promise<boolean>, what: string) {
      const deadline = Date.now() + 20_000;
      while (!(await pred())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    }

    // Growth is published with both cosignatures.
    await valise("admin", "--data", dataDir, "unit", "add", "HQ/ASIA-1");
    await waitFor(async () => {
      const n = await published();
      return n !== undefined && sizeOf(n) >= 1;
    }, "a published checkpoint");
    let note = (await published())!;
    let q = verifyCheckpointQuorum(note, logV, verifiers, 2);
    assert.ok(q.ok, q.ok ? "" : q.reason);
    const shown = JSON.parse(
      await valise(
        "log",
        "checkpoint",
        "--server",
        url,
        "--key",
        logVkey,
        "--witness",
        `${wUrls[0]}=${keys[0]!.vkey}`,
        "--witness",
        keys[1]!.vkey,
        "--witness-quorum",
        "2",
        "--json",
      ),
    ) as { size: number; cosigners: { name: string }[] };
    assert.deepEqual(shown.cosigners.map((c) => c.name).sort(), ["witness.test/w1", "witness.test/w2"]);
    const stranger = (
      JSON.parse(await valise("witness", "init", "--key", join(dir, "x.key"), "--json")) as { vkey: string }
    ).vkey;
    await assert.rejects(
      valise("log", "checkpoint", "--server", url, "--key", logVkey, "--witness", stranger),
      (e: { stderr?: string }) => /0 of 1 required witness cosignatures/.test(e.stderr ?? ""),
    );
    const size1 = sizeOf(note);

    // One witness killed: the other keeps cosigning, but nothing short of quorum is published.
    await stop(w2, "SIGKILL");
    await valise("admin", "--data", dataDir, "unit", "add", "HQ/ASIA-2");
    await waitFor(async () => (await witnessed(0)) > size1, "witness 1 to cosign the new checkpoint");
    const size2 = await witnessed(0);
    await sleep(1500);
    note = (await published())!;
    assert.equal(sizeOf(note), size1, "a checkpoint with one of two cosignatures must not be published");
    assert.ok(verifyCheckpointQuorum(note, logV, verifiers, 2).ok);

    // Restarted on its state (its stale lock taken over), the witness refuses a rollback and a fork even when they
    // are signed with the real log key.
    w2 = await start(wUrls[1]!, witnessArgs(1, wPorts[1]!));
    const logSigner = parseNoteSignerKey(readFileSync(join(dataDir, "log-key"), "utf8").trim());
    // The server's publisher may move the restarted witness on to size2 at any moment (it keeps submitting), so
    // the fork is built at whatever size the witness holds and rebuilt if that moved meanwhile (409).
    const post = (body: string) => fetch(`${wUrls[1]}/add-checkpoint`, { method: "POST", body });
    let w2size = 0;
    let fork: Response | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      w2size = await witnessed(1);
      const forged = signNote(
        formatCheckpoint({ origin: logV.name, size: w2size, rootHash: new Uint8Array(32).fill(7), extensions: [] }),
        [logSigner],
      );
      fork = await post(`old ${w2size}\n\n${forged}`);
      if (fork.status !== 409) break;
    }
    assert.ok(w2size === size1 || w2size === size2, `restarted witness at ${w2size}, expected ${size1} or ${size2}`);
    assert.equal(fork!.status, 422, "a fork signed with the real log key is refused");
    const forgedSmall = signNote(
      formatCheckpoint({ origin: logV.name, size: 1, rootHash: new Uint8Array(32).fill(7), extensions: [] }),
      [logSigner],
    );
    const rollback = await post(`old 0\n\n${forgedSmall}`);
    assert.equal(rollback.status, 409, "a rollback to size 1 is refused");
    assert.ok(Number(await rollback.text()) >= w2size);

    // Publication resumes: the server learns nothing new is needed but a proof from the witness's size.
    await waitFor(async () => sizeOf((await published())!) >= size2, "publication to resume");
    note = (await published())!;
    q = verifyCheckpointQuorum(note, logV, verifiers, 2);
    assert.ok(q.ok, q.ok ? "" : q.reason);
    assert.equal(q.checkpoint.size, await witnessed(1));

    await Promise.all([stop(server, "SIGTERM"), stop(w1, "SIGTERM"), stop(w2, "SIGTERM")]);
    assert.equal(w1.exitCode, 0);
  },
);
