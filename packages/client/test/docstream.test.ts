/**
 * Streamed document encryption: round trips over awkward sizes and piece boundaries, byte-identical output of the
 * WebCrypto and Node implementations, every tampering the STREAM construction must catch, resumption at chunk k,
 * and a 1 GiB file round trip with flat memory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DOCSTREAM_CHUNK_SIZE,
  DOCSTREAM_HEADER_BYTES,
  DOCSTREAM_TAG_BYTES,
  createDocStreamHeader,
  docStreamChunkCount,
  docStreamChunkOffset,
  docStreamCiphertextSize,
  docStreamPlaintextSize,
  docStreamResumePoint,
  generateDocStreamKey,
  parseDocStreamHeader,
  ValiseError,
  type DocStreamParams,
} from "@valise/core";
import { decryptStream, encryptStream, skipBytes, webCryptoStreamCipher } from "../src/docstream.js";
import {
  DocStreamPool,
  decryptStream as nodeDecrypt,
  decryptToFile,
  defaultDocStreamWorkers,
  encryptFile,
  INLINE_CHUNKS,
  encryptStream as nodeEncrypt,
  nodeStreamCipher,
  readCiphertextFile,
  writeToFile,
} from "../src/node/docstream.js";

const CS = DOCSTREAM_CHUNK_SIZE;
const P: DocStreamParams = { objectId: "f-abcdefgh12345678", version: 3, label: "SECRET/ASIA" };
const pool = new DocStreamPool(2);

/** Yields `bytes` in random piece sizes (1 byte … 2.5 chunks). */
async function* pieces(bytes: Uint8Array, seed = 1, max = 2.5 * CS): AsyncIterable<Uint8Array> {
  let s = seed;
  let o = 0;
  while (o < bytes.length) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (s % 3 === 0 ? s % 17 : s % Math.floor(max));
    yield bytes.subarray(o, o + n);
    o += n;
  }
}

async function collect(src: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of src) parts.push(p.slice());
  return new Uint8Array(Buffer.concat(parts)); // a Uint8Array: Buffer's slice() would not copy
}

type Impl = {
  name: string;
  enc: typeof encryptStream;
  dec: typeof decryptStream;
};
const IMPLS: Impl[] = [
  { name: "webcrypto", enc: encryptStream, dec: decryptStream },
  {
    name: "node-inline",
    enc: (k, p, s, o) => nodeEncrypt(k, p, s, { ...o, workers: 0 }),
    dec: (k, p, s, o) => nodeDecrypt(k, p, s, { ...o, workers: 0 }),
  },
  {
    name: "node-pool",
    enc: (k, p, s, o) => nodeEncrypt(k, p, s, { ...o, workers: pool }),
    dec: (k, p, s, o) => nodeDecrypt(k, p, s, { ...o, workers: pool }),
  },
  {
    // the default path on more than two cores: the first chunks on the calling thread, the rest on the pool
    name: "node-inline-then-pool",
    enc: (k, p, s, o) => nodeEncrypt(k, p, s, { ...o, workers: pool, inlineChunks: 2 }),
    dec: (k, p, s, o) => nodeDecrypt(k, p, s, { ...o, workers: pool, inlineChunks: 2 }),
  },
  {
    name: "node-default",
    enc: (k, p, s, o) => nodeEncrypt(k, p, s, o),
    dec: (k, p, s, o) => nodeDecrypt(k, p, s, o),
  },
];

test("default placement: the calling thread on one or two cores, a pool of cores − 1 beyond", () => {
  assert.equal(defaultDocStreamWorkers(1), 0);
  assert.equal(defaultDocStreamWorkers(2), 0);
  assert.equal(defaultDocStreamWorkers(4), 3);
  assert.ok(INLINE_CHUNKS >= 1);
});

async function rejects(p: Promise<unknown>, what: string): Promise<ValiseError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ValiseError, `${what}: expected ValiseError, got ${String(e)}`);
    assert.equal(e.code, "protocol_error", what);
    return e;
  }
  assert.fail(`${what}: was accepted`);
}

test("size arithmetic", () => {
  for (const n of [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5, 2 * 1024 ** 3]) {
    const c = docStreamCiphertextSize(n);
    assert.equal(c, DOCSTREAM_HEADER_BYTES + n + docStreamChunkCount(n) * DOCSTREAM_TAG_BYTES);
    assert.equal(docStreamPlaintextSize(c), n);
  }
  assert.equal(docStreamChunkCount(0), 1);
  assert.equal(docStreamChunkCount(CS), 1);
  assert.equal(docStreamChunkCount(CS + 1), 2);
  assert.equal(docStreamChunkOffset(0), 51);
  assert.equal(docStreamChunkOffset(2), 51 + 2 * (CS + 16));
  assert.throws(() => docStreamPlaintextSize(51 + 15));
  assert.throws(() => docStreamPlaintextSize(51 + CS + 16 + 16)); // an empty chunk after a full one
  assert.deepEqual(docStreamResumePoint(10), { chunk: 0, ciphertextOffset: 0, plaintextOffset: 0 });
  assert.deepEqual(docStreamResumePoint(51 + 2 * (CS + 16) + 7), {
    chunk: 2,
    ciphertextOffset: 51 + 2 * (CS + 16),
    plaintextOffset: 2 * CS,
  });
  const h = parseDocStreamHeader(createDocStreamHeader(generateDocStreamKey()));
  assert.equal(h.chunkSize, CS);
  assert.equal(h.bytes.length, DOCSTREAM_HEADER_BYTES);
});

test("round trips of awkward sizes, all implementations byte-identical", async () => {
  for (const n of [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5]) {
    const key = generateDocStreamKey();
    const header = createDocStreamHeader(key);
    const plain = randomBytes(n);
    const outs: Uint8Array[] = [];
    for (const [i, impl] of IMPLS.entries()) {
      const ct = await collect(impl.enc(key, P, pieces(plain, n + i), { header }));
      assert.equal(ct.length, docStreamCiphertextSize(n), `${impl.name} size ${n}`);
      outs.push(ct);
    }
    for (const ct of outs.slice(1)) assert.ok(Buffer.from(ct).equals(outs[0]!), `identical ciphertext for ${n}`);
    for (const impl of IMPLS) {
      const got = await collect(impl.dec(key, P, pieces(outs[0]!, n + 7), {}));
      assert.ok(Buffer.from(got).equals(plain), `${impl.name} round trip of ${n} bytes`);
    }
    // one piece per chunk out of decryption (the content layer counts chunks that way)
    let count = 0;
    for await (const _ of nodeDecrypt(key, P, pieces(outs[0]!, 3), { workers: pool })) count++;
    assert.equal(count, docStreamChunkCount(n));
  }
});

test("fresh headers: header is the first piece, nonce prefixes differ", async () => {
  const key = generateDocStreamKey();
  const a = await collect(encryptStream(key, P, pieces(new Uint8Array(10))));
  const b = await collect(nodeEncrypt(key, P, pieces(new Uint8Array(10)), { workers: pool }));
  assert.notDeepEqual(a.subarray(12, 19), b.subarray(12, 19));
  assert.deepEqual(await collect(nodeDecrypt(key, P, pieces(a), { workers: 0 })), new Uint8Array(10));
});

// --- attacks: a small chunk size so every case has several chunks ---
const SMALL = 4096;
const SMALL_CHUNK = SMALL + DOCSTREAM_TAG_BYTES;

function chunkAt(ct: Uint8Array, k: number): Uint8Array {
  const at = DOCSTREAM_HEADER_BYTES + k * SMALL_CHUNK;
  return ct.subarray(at, Math.min(ct.length, at + SMALL_CHUNK));
}

test("tampering, truncation, extension, swapping and wrong keys are rejected", async () => {
  const key = generateDocStreamKey();
  const header = createDocStreamHeader(key, { chunkSize: SMALL });
  const plain = randomBytes(3 * SMALL + 5); // chunks 0,1,2 full, chunk 3 of 5 bytes
  const ct = await collect(encryptStream(key, P, pieces(plain, 5, 3 * SMALL), { header }));
  const other = (p: DocStreamParams) => collect(encryptStream(key, p, pieces(plain, 6, 3 * SMALL), { header }));
  const otherObject = await other({ ...P, objectId: "f-zzzzzzzz99999999" });
  const otherVersion = await other({ ...P, version: 4 });
  const fullLast = plain.subarray(0, 3 * SMALL); // last chunk full
  const ctFull = await collect(encryptStream(key, P, pieces(fullLast, 8, 3 * SMALL), { header }));
  const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
  const flip = (b: Uint8Array, at: number) => {
    const c = b.slice();
    c[at]! ^= 1;
    return c;
  };
  const h = ct.subarray(0, DOCSTREAM_HEADER_BYTES);
  const [c0, c1, c2, c3] = [0, 1, 2, 3].map((k) => chunkAt(ct, k)) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  assert.equal(c3.length, 5 + 16);

  const cases: [string, Uint8Array, DocStreamParams?, Uint8Array?][] = [
    ["truncated at a chunk boundary (last chunk dropped)", cat(h, c0, c1, c2)],
    ["truncated at a chunk boundary (full-size last chunk dropped)", ctFull.subarray(0, ctFull.length - SMALL_CHUNK)],
    ["truncated mid-chunk", ct.subarray(0, ct.length - 3)],
    ["truncated mid-chunk (inside a middle chunk)", ct.subarray(0, DOCSTREAM_HEADER_BYTES + SMALL_CHUNK + 100)],
    ["truncated to the header", h],
    ["truncated inside the header", h.subarray(0, 30)],
    ["reordered chunks", cat(h, c0, c2, c1, c3)],
    ["chunk from another object id (same key and header)", cat(h, c0, chunkAt(otherObject, 1), c2, c3)],
    ["chunk from another version (same key and header)", cat(h, c0, c1, chunkAt(otherVersion, 2), c3)],
    ["last chunk from another object id", cat(h, c0, c1, c2, chunkAt(otherObject, 3))],
    ["relabelled AAD (SECRET/ASIA read as UNCLASSIFIED)", ct, { ...P, label: "UNCLASSIFIED" }],
    ["other version in the AAD", ct, { ...P, version: 2 }],
    ["bit flip in the magic", flip(ct, 1)],
    ["bit flip in the chunk size", flip(ct, 10)],
    ["bit flip in the nonce prefix", flip(ct, 14)],
    ["bit flip in the commitment", flip(ct, 40)],
    ["bit flip in a body byte", flip(ct, DOCSTREAM_HEADER_BYTES + SMALL_CHUNK + 7)],
    ["bit flip in a tag", flip(ct, DOCSTREAM_HEADER_BYTES + SMALL_CHUNK - 1)],
    ["bit flip in the last tag", flip(ct, ct.length - 1)],
    ["extra chunk appended after the last", cat(ct, c1)],
    ["extra empty chunk appended after the last", cat(ct, c3.subarray(5))],
    ["extra chunk appended after a full-size last chunk", cat(ctFull, chunkAt(ctFull, 0))],
    ["one extra byte appended", cat(ct, new Uint8Array(1))],
    ["wrong key", ct, P, generateDocStreamKey()],
    ["empty stream", new Uint8Array(0)],
  ];
  for (const impl of IMPLS) {
    // the untampered stream opens
    assert.deepEqual(await collect(impl.dec(key, P, pieces(ct, 2, 2 * SMALL), {})), new Uint8Array(plain));
    for (const [what, bytes, params, k] of cases) {
      await rejects(collect(impl.dec(k ?? key, params ?? P, pieces(bytes, 3, 2 * SMALL), {})), `${impl.name}: ${what}`);
    }
  }
  const e = await rejects(collect(decryptStream(generateDocStreamKey(), P, pieces(ct))), "wrong key");
  assert.match(e.message, /commitment/); // the wrong key is refused at the header, before any chunk
});

test("resume: encryption and decryption from chunk k give the tail of a full run", async () => {
  const key = generateDocStreamKey();
  const header = createDocStreamHeader(key);
  const plain = randomBytes(4 * CS + 77);
  const full = await collect(nodeEncrypt(key, P, pieces(plain, 9), { header, workers: pool }));
  for (const k of [1, 2, 4]) {
    const at = docStreamChunkOffset(k);
    for (const impl of IMPLS) {
      const tail = await collect(impl.enc(key, P, pieces(plain.subarray(k * CS), k), { header, fromChunk: k }));
      assert.ok(Buffer.from(tail).equals(full.subarray(at)), `${impl.name}: encrypt from chunk ${k}`);
      const ptail = await collect(impl.dec(key, P, pieces(full.subarray(at), k), { header, fromChunk: k }));
      assert.ok(Buffer.from(ptail).equals(plain.subarray(k * CS)), `${impl.name}: decrypt from chunk ${k}`);
    }
  }
  // an upload that stopped at byte N: re-encrypt from the resume chunk, drop what the server already holds
  for (const n of [0, 20, 51, 51 + CS + 3, full.length - 1]) {
    const r = docStreamResumePoint(n);
    const src = pieces(plain.subarray(r.plaintextOffset), n);
    const rest = await collect(
      skipBytes(encryptStream(key, P, src, { header, fromChunk: r.chunk }), n - r.ciphertextOffset),
    );
    assert.ok(Buffer.from(rest).equals(full.subarray(n)), `upload resumed at byte ${n}`);
  }
  await assert.rejects(collect(encryptStream(key, P, pieces(plain), { fromChunk: 1 })), /header/);
  // resuming past the end of the plaintext is refused rather than producing a different stream
  await assert.rejects(collect(encryptStream(key, P, pieces(new Uint8Array(0)), { header, fromChunk: 5 })));
  // StreamCipher adapters (used by the documents and cables clients) agree
  for (const c of [webCryptoStreamCipher(), nodeStreamCipher(CS, { workers: pool })]) {
    assert.equal(c.ciphertextSize(plain.length), full.length);
    const ct = await collect(c.encrypt(key, header, P, pieces(plain, 4), 0));
    assert.ok(Buffer.from(ct).equals(full));
    const pt = await collect(c.decrypt(key, header, P, pieces(full.subarray(c.chunkOffset(2))), 2));
    assert.ok(Buffer.from(pt).equals(plain.subarray(2 * CS)));
  }
});

test("1 GiB file round trip with flat memory", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-docstream-"));
  let timer: NodeJS.Timeout | undefined;
  try {
    const inPath = join(dir, "in.bin");
    const ctPath = join(dir, "in.bin.valise");
    const outPath = join(dir, "out.bin");
    const N = 1024;
    const block = randomBytes(CS);
    const inHash = createHash("sha256");
    const fh = await open(inPath, "w");
    for (let i = 0; i < N; i++) {
      block.writeUInt32BE(i, 0); // every chunk differs
      inHash.update(block);
      await fh.write(block, 0, CS, i * CS);
    }
    await fh.close();
    const size = N * CS + 3; // and a short last chunk
    {
      const f = await open(inPath, "a");
      await f.write(Buffer.from([1, 2, 3]));
      await f.close();
      inHash.update(Buffer.from([1, 2, 3]));
    }
    const key = generateDocStreamKey();
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    let last = 0;
    const ctBytes = await writeToFile(
      encryptFile(inPath, P, key, { workers: pool, onProgress: (p) => (last = p.plaintextBytes) }),
      ctPath,
    );
    assert.equal(last, size);
    assert.equal(ctBytes, docStreamCiphertextSize(size));
    assert.equal(statSync(ctPath).size, ctBytes);
    const ptBytes = await decryptToFile(outPath, P, key, readCiphertextFile(ctPath), { workers: pool });
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(ptBytes, size);
    const outHash = createHash("sha256");
    const rf = await open(outPath, "r");
    for await (const piece of rf.createReadStream({ highWaterMark: 4 * CS })) outHash.update(piece as Buffer);
    assert.equal(outHash.digest("hex"), inHash.digest("hex"));
    const growth = (peak - base) / 2 ** 20;
    console.log(`# 1 GiB round trip: rss growth ${growth.toFixed(1)} MiB`);
    assert.ok(growth < 200, `rss grew by ${growth.toFixed(1)} MiB`);

    // a download resumed at chunk 700: the file is cut back there and continued from a ranged read
    const k = 700;
    const hf = await open(ctPath, "r");
    const hb = Buffer.alloc(DOCSTREAM_HEADER_BYTES);
    await hf.read(hb, 0, hb.length, 0);
    await hf.close();
    const n = await decryptToFile(outPath, P, key, readCiphertextFile(ctPath, { fromChunk: k }), {
      header: hb,
      fromChunk: k,
      workers: 0,
    });
    assert.equal(n, size);
    assert.equal(statSync(outPath).size, size);
  } finally {
    clearInterval(timer);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cleanup", async () => {
  await pool.close();
});
