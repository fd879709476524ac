/**
 * Streamed document encryption benchmark (`@valise/core` docstream, `@valise/client/node/docstream`): a 1 GiB file
 * encrypted file-to-file and decrypted file-to-file, on the calling thread and on the worker pool, against a bare
 * `createCipheriv('aes-256-gcm')` loop over 1 MiB chunks in memory and `openssl speed` in the same run.
 * MB = 10^6 bytes. Writes bench/results/documents.json.
 */
import { spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { arch, availableParallelism, cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { DOCSTREAM_CHUNK_SIZE, generateDocStreamKey, type DocStreamParams } from "@valise/core";
import {
  DocStreamPool,
  decryptToFile,
  encryptFile,
  readCiphertextFile,
  readFilePieces,
  writeToFile,
} from "@valise/client/node/docstream";
import { printTable, writeResults } from "./lib/stats.js";

const CS = DOCSTREAM_CHUNK_SIZE;
const FILE_BYTES = 1024 * CS; // 1 GiB
const REPS = 3;
const P: DocStreamParams = { objectId: "f-benchbench0001", version: 1, label: "SECRET/ASIA" };
const mbps = (bytes: number, ms: number) => +(bytes / 1e3 / ms).toFixed(0);
const best = (xs: number[]) => Math.max(...xs);

async function makeInput(path: string): Promise<void> {
  const block = randomBytes(CS);
  const fh = await open(path, "w");
  for (let i = 0; i < FILE_BYTES / CS; i++) {
    block.writeUInt32BE(i, 0);
    await fh.write(block, 0, CS, i * CS);
  }
  await fh.close();
}

/** Bare node:crypto over 1 MiB chunks already in memory: one cipher per chunk, nothing else. */
function nodeRaw(): number {
  const key = randomBytes(32);
  const buf = randomBytes(CS);
  const iv = Buffer.alloc(12);
  const aad = Buffer.from("valise-stream/1\nf-benchbench0001\n1\nSECRET/ASIA");
  const t = performance.now();
  for (let i = 0; i < FILE_BYTES / CS; i++) {
    iv.writeUInt32BE(i, 7);
    const c = createCipheriv("aes-256-gcm", key, iv);
    c.setAAD(aad);
    c.update(buf);
    c.final();
    c.getAuthTag();
  }
  return mbps(FILE_BYTES, performance.now() - t);
}

function openssl(): { MBps: number | null; version: string | null } {
  const v = spawnSync("openssl", ["version"], { encoding: "utf8" });
  if (v.error || v.status !== 0) return { MBps: null, version: null };
  const r = spawnSync("openssl", ["speed", "-evp", "aes-256-gcm", "-bytes", "1048576", "-seconds", "3"], {
    encoding: "utf8",
  });
  // last line: "AES-256-GCM    3181379.58k" (1000s of bytes per second)
  const m = /aes-256-gcm\s+([\d.]+)k\s*$/im.exec(r.stdout ?? "");
  return { MBps: m ? +(parseFloat(m[1]!) / 1000).toFixed(0) : null, version: v.stdout.trim() };
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

async function main() {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "valise-bench-docs-"));
  const inPath = join(dir, "in.bin");
  const ctPath = join(dir, "in.bin.valise");
  const outPath = join(dir, "out.bin");
  const pool = new DocStreamPool(availableParallelism());
  try {
    await makeInput(inPath);
    const key = generateDocStreamKey();
    const enc = (workers: number | DocStreamPool) => () =>
      writeToFile(encryptFile(inPath, P, key, { workers }), ctPath, { truncate: false });
    const dec = (workers: number | DocStreamPool) => () =>
      decryptToFile(outPath, P, key, readCiphertextFile(ctPath), { workers, overwrite: true });
    const copy = () => writeToFile(readFilePieces(inPath), outPath, { truncate: false });
    // warm up both paths (JIT, worker start, page cache)
    await enc(pool)();
    await dec(pool)();
    const raw: number[] = [];
    const e1: number[] = [];
    const d1: number[] = [];
    const eP: number[] = [];
    const dP: number[] = [];
    const io: number[] = [];
    const load = loadavg()[0]!;
    for (let r = 0; r < REPS; r++) {
      io.push(mbps(FILE_BYTES, await timed(copy)));
      raw.push(nodeRaw());
      e1.push(mbps(FILE_BYTES, await timed(enc(0))));
      d1.push(mbps(FILE_BYTES, await timed(dec(0))));
      eP.push(mbps(FILE_BYTES, await timed(enc(pool))));
      dP.push(mbps(FILE_BYTES, await timed(dec(pool))));
    }
    if (statSync(outPath).size !== FILE_BYTES) throw new Error("decrypted size mismatch");
    const ssl = openssl();
    const nodeRawMBps = best(raw);
    const single = { encryptMBps: best(e1), decryptMBps: best(d1) };
    const multi = { encryptMBps: best(eP), decryptMBps: best(dP) };
    const results = {
      benchmark: "documents",
      unit: "MB/s, MB = 10^6 bytes; best of " + REPS + " runs",
      encryptMBps: multi.encryptMBps,
      decryptMBps: multi.decryptMBps,
      nodeRawMBps,
      opensslMBps: ssl.MBps,
      fileCopyMBps: best(io),
      singleThread: single,
      workerPool: { workers: pool.size, ...multi },
      singleThreadOverheadVsRaw: +(1 - single.encryptMBps / nodeRawMBps).toFixed(3),
      workerPoolVsRaw: +(multi.encryptMBps / nodeRawMBps).toFixed(2),
      workerPoolVsHalfOpenssl: ssl.MBps ? +(multi.encryptMBps / (ssl.MBps / 2)).toFixed(2) : null,
      loadAverageAtStart: +load.toFixed(2),
      runs: {
        fileCopyMBps: io,
        nodeRawMBps: raw,
        singleThread: { encrypt: e1, decrypt: d1 },
        workerPool: { encrypt: eP, decrypt: dP },
      },
      chunkSize: CS,
      fileBytes: FILE_BYTES,
      what:
        "file to file (encryptFile → writeToFile; readCiphertextFile → decryptToFile) on page-cached temp files, " +
        "outputs overwritten in place; fileCopyMBps = the same reader and writer without crypto (I/O floor)",
      targets: { singleThreadOverheadVsRaw: 0.1, workerPoolEncryptMBps: "> nodeRawMBps, toward opensslMBps / 2" },
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: availableParallelism(),
        memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
        os: `${platform()} ${release()} ${arch()}`,
        node: process.version,
        nodeOpenssl: process.versions.openssl,
        openssl: ssl.version,
      },
      elapsedMs: Math.round(performance.now() - started),
      time: new Date().toISOString(),
    };
    printTable("documents: streamed AES-256-GCM, 1 GiB file to file (MB/s, MB = 10^6 B)", [
      ["node raw createCipheriv loop (in memory)", nodeRawMBps],
      ["encrypt, calling thread", single.encryptMBps],
      ["decrypt, calling thread", single.decryptMBps],
      [`encrypt, ${pool.size} workers`, multi.encryptMBps],
      [`decrypt, ${pool.size} workers`, multi.decryptMBps],
      ["openssl speed -evp aes-256-gcm (1 MiB)", ssl.MBps ?? "n/a"],
      ["file copy, same reader/writer, no crypto", best(io)],
      ["single-thread overhead vs raw", `${(results.singleThreadOverheadVsRaw * 100).toFixed(1)} %`],
    ]);
    console.log(`\nwrote ${writeResults("documents", results)}`);
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
