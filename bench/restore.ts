/**
 * Restore drill (issue 19) → bench/results/restore.json: how long `valise admin backup --out FILE` and
 * `valise admin restore FILE` take, as an operator runs them (separate `valise` processes, start-up included), for a
 * server holding a realistic amount of state: 10,000 messages (512-byte ciphertexts, the size of a short MLS
 * application message) in 20 conversations, each with its audit event (so ~10,000 audit-log entries), 40 users with
 * a device each in the directory log, and 40 blobs of 256 KiB (10 MiB of document ciphertext).
 *
 * Baseline, same run: `tar -cf` of the same data directory (an offline copy of the files, no consistency) and, on
 * PostgreSQL, a bare `pg_dump --format=custom` — what the backup costs above copying the bytes.
 *
 *   node bench/dist/restore.js [--messages N]      (PostgreSQL too when VALISE_TEST_DATABASE_URL is set)
 */
import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { AuditEvent } from "@valise/core";
import { openStore } from "@valise/server";
import { freshDb, PG_URL, type TestDb } from "@valise/server/testing/databases";
import { CLI } from "./lib/serve.js";
import { printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({ options: { messages: { type: "string", default: "10000" } } });
const MESSAGES = Number(args.messages);
const USERS = 40;
const CONVERSATIONS = 20;
const BLOBS = 40;
const BLOB_BYTES = 256 * 1024;

async function fill(db: TestDb): Promise<void> {
  const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
  try {
    await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
    const devices: { handle: string; id: string }[] = [];
    for (let i = 0; i < USERS; i++) {
      const handle = `user${i}`;
      const { enrollmentCode } = await store.directory.addUser({
        handle,
        units: ["HQ/ASIA-1"],
        clearance: "SECRET/ASIA",
        role: "user",
      });
      const id = `dev-${randomBytes(8).toString("hex")}`;
      await store.directory.redeemEnrollment(
        enrollmentCode,
        { id, name: "laptop", signaturePublicKey: new Uint8Array(randomBytes(32)) },
        [],
        () => undefined,
      );
      devices.push({ handle, id });
    }
    const convs: { id: string; device: string; actor: string }[] = [];
    for (let c = 0; c < CONVERSATIONS; c++) {
      const d = devices[c % devices.length]!;
      const id = randomUUID();
      await store.conversations.create({
        id,
        kind: "direct",
        label: "SECRET/ASIA",
        unit: null,
        creator: d.handle,
        creatorDevice: d.id,
      });
      convs.push({ id, device: d.id, actor: d.handle });
    }
    // Appended in batches of 100, as the server's batcher groups concurrent sends.
    for (let i = 0; i < MESSAGES; i += 100) {
      await store.conversations.appendBatch(
        Array.from({ length: Math.min(100, MESSAGES - i) }, (_, k) => {
          const c = convs[(i + k) % convs.length]!;
          const audit: AuditEvent = {
            id: randomUUID(),
            time: new Date().toISOString(),
            actor: c.actor,
            device: c.device,
            source: "127.0.0.1",
            client: "valise-cli",
            action: "message.send",
            object: c.id,
            target_device: null,
            label: "SECRET/ASIA",
            unit: null,
            bytes: 512,
            canary: false,
            outcome: "ok",
          };
          return {
            conversationId: c.id,
            senderDevice: c.device,
            kind: "application" as const,
            epoch: 0,
            payload: new Uint8Array(randomBytes(512)),
            idemKey: randomUUID(),
            audit,
          };
        }),
      );
    }
    for (let b = 0; b < BLOBS; b++) {
      const id = `b-${randomBytes(16).toString("hex")}`;
      await store.blobBytes.create(id);
      const bytes = new Uint8Array(randomBytes(BLOB_BYTES));
      await store.blobBytes.append(
        id,
        0,
        (async function* () {
          yield bytes;
        })(),
        BLOB_BYTES,
      );
    }
  } finally {
    await store.close();
  }
}

function timed(cmd: string, argv: string[], env: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed: ${r.stderr}`);
  return performance.now() - t;
}

const results: Record<string, unknown>[] = [];
for (const kind of PG_URL ? (["sqlite", "postgres"] as const) : (["sqlite"] as const)) {
  const db = await freshDb(kind);
  const target = await freshDb(kind);
  const tmp = mkdtempSync(join(tmpdir(), "valise-bench-restore-"));
  try {
    const tFill = performance.now();
    await fill(db);
    const fillMs = performance.now() - tFill;
    const env: NodeJS.ProcessEnv = { VALISE_DATABASE_URL: db.databaseUrl ?? "" };
    const tenv: NodeJS.ProcessEnv = { VALISE_DATABASE_URL: target.databaseUrl ?? "" };
    const archive = join(tmp, "backup.tar");
    // Baselines: the bytes alone (files of the data directory; the database's own dump tool on PostgreSQL).
    const tarMs = timed("tar", ["-cf", join(tmp, "baseline.tar"), "-C", db.dataDir, "."], {});
    const pgDumpMs =
      kind === "postgres"
        ? timed("pg_dump", ["--format=custom", "--file", join(tmp, "baseline.pgdump"), db.databaseUrl!], {})
        : null;
    const versionMs = timed(process.execPath, [CLI, "--version"], {});
    const backupMs = timed(process.execPath, [CLI, "admin", "backup", "--data", db.dataDir, "--out", archive], env);
    rmSync(target.dataDir, { recursive: true, force: true });
    const restoreMs = timed(process.execPath, [CLI, "admin", "restore", archive, "--data", target.dataDir], tenv);
    results.push({
      database: kind,
      messages: MESSAGES,
      blobs: BLOBS,
      blobBytes: BLOB_BYTES,
      archiveBytes: statSync(archive).size,
      fillMs: Math.round(fillMs),
      cliStartMs: Math.round(versionMs),
      backupMs: Math.round(backupMs),
      restoreMs: Math.round(restoreMs),
      baselineTarMs: Math.round(tarMs),
      baselinePgDumpMs: pgDumpMs === null ? null : Math.round(pgDumpMs),
    });
  } finally {
    await db.dispose();
    await target.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}

for (const r of results)
  printTable(`restore drill, ${String(r.database)} (${MESSAGES} messages, ${BLOBS} × 256 KiB blobs)`, [
    ["archive size (MiB)", Number(r.archiveBytes) / 2 ** 20],
    ["valise admin backup --out FILE (ms)", Number(r.backupMs)],
    ["valise admin restore FILE (ms)", Number(r.restoreMs)],
    ["baseline: valise --version, CLI start (ms)", Number(r.cliStartMs)],
    ["baseline: tar -cf of the data directory (ms)", Number(r.baselineTarMs)],
    ...(r.baselinePgDumpMs !== null
      ? [["baseline: bare pg_dump (ms)", Number(r.baselinePgDumpMs)] as [string, number]]
      : []),
  ]);
const file = writeResults("restore", {
  date: new Date().toISOString(),
  node: process.versions.node,
  cpus: cpus().length,
  loadavg: loadavg(),
  results,
});
console.log(`\nwrote ${file}`);
