/**
 * Node-only fast path for streamed document encryption (`@valise/core` docstream format; same API and same bytes as
 * the WebCrypto implementation in ../docstream.ts). Chunks are sealed with node:crypto, on the calling thread or on a
 * pool of worker threads with chunks in flight on every worker and results yielded in order (see `workers`). Buffers move
 * between threads by transfer, never by copy: file reads go into a ring of chunk-sized ArrayBuffers that the workers
 * hand back after use.
 *
 * Memory is flat: at most `2 × workers + 2` chunks are held at once, whatever the file size.
 */
import { createCipheriv, createDecipheriv, createHash, createSecretKey, type KeyObject } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import {
  DOCSTREAM_NONCE_BYTES,
  DOCSTREAM_TAG_BYTES,
  DOCSTREAM_CHUNK_SIZE,
  DOCSTREAM_HEADER_BYTES,
  docStreamAad,
  docStreamError,
  docStreamNonce,
  docStreamPlaintextOffset,
  ValiseError,
  type DocStreamParams,
} from "@valise/core";
import {
  checkCipherChunk,
  progressCounter,
  rechunk,
  splitHeader,
  startDecrypt,
  startEncrypt,
  streamCipherOf,
  type DecryptStreamOptions,
  type EncryptStreamOptions,
  type StreamChunk,
} from "../docstream.js";
import type { StreamCipher } from "../content.js";
import type { ChunkResult, ChunkTask } from "./docstream-worker.js";

export interface NodeStreamOptions {
  /**
   * Where chunks are sealed: a pool, a number of workers for the shared pool, or 0 for the calling thread. By default
   * (`defaultDocStreamWorkers`): the calling thread on one or two cores; on more, the first `INLINE_CHUNKS` chunks on
   * the calling thread (a small file never starts a worker) and the rest on a shared pool of one worker per core but
   * one. Measured in bench/documents.ts on two cores: two workers lost to the calling thread (workers, calling thread
   * and libuv's I/O threads fought over the cores, and every chunk crossed threads twice), and one worker bought no
   * speed for more CPU per byte.
   */
  readonly workers?: number | DocStreamPool;
  /**
   * Chunks sealed on the calling thread before a pool takes over (default: `INLINE_CHUNKS` on the default path, 0 when
   * `workers` is given).
   */
  readonly inlineChunks?: number;
  /**
   * The source gives up its pieces: whole-buffer pieces may be transferred to (detached by) the workers instead of
   * copied. Our own file readers always allow it.
   */
  readonly transferInput?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Buffers

/** Chunk-sized ArrayBuffers for reading, handed back after use; remembers which buffers are its own. */
class BufferRing {
  private readonly free: ArrayBuffer[] = [];
  private readonly mine = new WeakSet<ArrayBuffer>();
  constructor(private readonly max = 16) {}
  take(size: number): ArrayBuffer {
    const i = this.free.findIndex((b) => b.byteLength === size);
    const ab = i >= 0 ? this.free.splice(i, 1)[0]! : new ArrayBuffer(size);
    this.mine.add(ab);
    return ab;
  }
  give(ab: ArrayBuffer): void {
    this.mine.add(ab);
    if (this.free.length < this.max && ab.byteLength > 0) this.free.push(ab);
  }
  /** `data` is the whole of one of our buffers (so nothing else can still be looking at it). */
  owns(data: Uint8Array): boolean {
    return (
      data.buffer instanceof ArrayBuffer &&
      this.mine.has(data.buffer) &&
      data.byteOffset === 0 &&
      data.byteLength === data.buffer.byteLength
    );
  }
}

/** Sources made by `readFilePieces`, with the ring their pieces come from. */
const rings = new WeakMap<object, BufferRing>();

async function readFull(fh: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * Reads a file (from `start`) as pieces of `pieceSize` bytes — the first one `firstPiece` bytes when given — with
 * `readAhead` reads in flight. Pieces are buffers of a ring the encrypt/decrypt functions hand back, so reading a
 * file of any size allocates a handful of buffers.
 */
export function readFilePieces(
  path: string,
  opts: { start?: number; pieceSize?: number; firstPiece?: number; readAhead?: number } = {},
): AsyncIterable<Uint8Array> {
  const ring = new BufferRing();
  const pieceSize = opts.pieceSize ?? DOCSTREAM_CHUNK_SIZE;
  const readAhead = Math.max(1, opts.readAhead ?? 2);
  const gen = (async function* () {
    const fh = await open(path, "r");
    const q: Promise<{ piece: Uint8Array; short: boolean }>[] = [];
    try {
      let pos = opts.start ?? 0;
      let size = opts.firstPiece ?? pieceSize;
      let eof = false;
      const issue = () => {
        const buf = new Uint8Array(ring.take(size));
        const at = pos;
        pos += size;
        size = pieceSize;
        const p = readFull(fh, buf, at).then((n) =>
          n === buf.length ? { piece: buf, short: false } : { piece: buf.slice(0, n), short: true },
        );
        p.catch(() => undefined);
        q.push(p);
      };
      for (let i = 0; i < readAhead; i++) issue();
      while (q.length > 0) {
        const { piece, short } = await q.shift()!;
        if (!eof && !short) issue();
        if (short) eof = true;
        if (piece.length > 0) yield piece;
        if (eof) break;
      }
    } finally {
      await Promise.allSettled(q);
      await fh.close();
    }
  })();
  rings.set(gen, ring);
  return gen;
}

/**
 * Writes a stream of pieces to `path` at `position` (default 0) with positional writes, several in flight, pieces
 * gathered into writev calls. Returns the number of bytes written. By default the file is first cut at `position`;
 * with `truncate: false` it is overwritten in place and cut at the end of what was written (cheaper when the file
 * exists: its cached pages are reused instead of freed and allocated again).
 */
export async function writeToFile(
  source: AsyncIterable<Uint8Array>,
  path: string,
  opts: { position?: number; truncate?: boolean; mode?: number; sync?: boolean } = {},
): Promise<number> {
  const position = opts.position ?? 0;
  const fresh = position === 0 && opts.truncate !== false;
  const fh = await open(path, fresh ? "w" : "r+", opts.mode ?? 0o600).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT" && position === 0) return open(path, "w", opts.mode ?? 0o600);
    throw e;
  });
  const inflight: Promise<unknown>[] = [];
  let pos = position;
  let batch: Uint8Array[] = [];
  let batchLen = 0;
  const flush = async () => {
    if (batchLen === 0) return;
    const at = pos;
    const bufs = batch;
    pos += batchLen;
    batch = [];
    batchLen = 0;
    const p = writevAll(fh, bufs, at);
    p.catch(() => undefined);
    inflight.push(p);
    while (inflight.length > 3) await inflight.shift();
  };
  try {
    if (position > 0 && opts.truncate !== false) await fh.truncate(position);
    for await (const piece of source) {
      if (piece.length === 0) continue;
      batch.push(piece);
      batchLen += piece.length;
      if (batchLen >= 1 << 20) await flush();
    }
    await flush();
    while (inflight.length > 0) await inflight.shift();
    if (opts.truncate === false) await fh.truncate(pos); // overwritten in place: cut any old tail
    if (opts.sync) await fh.sync();
    return pos - position;
  } finally {
    await Promise.allSettled(inflight);
    await fh.close();
  }
}

async function writevAll(fh: FileHandle, bufs: Uint8Array[], position: number): Promise<void> {
  let at = position;
  let rest = bufs;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, at);
    at += bytesWritten;
    let n = bytesWritten;
    while (rest.length > 0 && n >= rest[0]!.length) {
      n -= rest[0]!.length;
      rest = rest.slice(1);
    }
    if (n > 0) rest = [rest[0]!.subarray(n), ...rest.slice(1)];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Worker pool

interface Slot {
  readonly worker: Worker;
  outstanding: number;
}

/** Worker threads sealing/opening chunks. Idle workers do not keep the process alive. */
export class DocStreamPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<
    number,
    { slot: Slot; resolve: (r: ChunkResult) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private failed: Error | undefined;

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, Math.floor(size));
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(new URL("./docstream-worker.js", import.meta.url));
      const slot: Slot = { worker, outstanding: 0 };
      worker.unref();
      worker.on("message", (r: ChunkResult) => this.settle(r));
      worker.on("error", (e: Error) => this.fail(e));
      worker.on("exit", (code) => {
        if (code !== 0 || this.waiting.size > 0) this.fail(new Error(`docstream worker exited (${code})`));
      });
      this.slots.push(slot);
    }
  }

  /** Runs one task on the least busy worker; `task.data` is transferred (detached here). */
  run(task: Omit<ChunkTask, "id">): Promise<ChunkResult> {
    if (this.failed) return Promise.reject(this.failed);
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.outstanding < slot.outstanding) slot = s;
    const id = this.nextId++;
    const full: ChunkTask = { ...task, id };
    return new Promise<ChunkResult>((resolve, reject) => {
      this.waiting.set(id, { slot, resolve, reject });
      if (slot.outstanding++ === 0) slot.worker.ref();
      slot.worker.postMessage(full, [task.data]);
    });
  }

  private settle(r: ChunkResult): void {
    const w = this.waiting.get(r.id);
    if (!w) return;
    this.waiting.delete(r.id);
    if (--w.slot.outstanding === 0) w.slot.worker.unref();
    w.resolve(r);
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(e);
    }
  }

  async close(): Promise<void> {
    this.failed ??= new Error("docstream pool closed");
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

let shared: DocStreamPool | undefined;
/** The process-wide pool (created on first use, one worker per core unless a size is given then). */
export function sharedDocStreamPool(size?: number): DocStreamPool {
  if (!shared || (size !== undefined && shared.size !== size)) {
    void shared?.close();
    shared = new DocStreamPool(size);
  }
  return shared;
}

/** Chunks sealed on the calling thread before the default path hands the rest to the pool. */
export const INLINE_CHUNKS = 4;

/** Workers of the default path: 0 (the calling thread) on one or two cores, else one per core but one. */
export function defaultDocStreamWorkers(cores = availableParallelism()): number {
  return cores <= 2 ? 0 : cores - 1;
}

interface Placement {
  /** The pool, created on first use (so a stream that ends within `inline` chunks never starts a worker). */
  readonly pool: (() => DocStreamPool) | undefined;
  /** Chunks sealed on the calling thread before the pool takes over. */
  readonly inline: number;
  /** Chunks in flight. */
  readonly window: number;
}

/** Where the chunks of one stream go: `inline` chunks on the calling thread first, then the pool (if any). */
function placement(opts: NodeStreamOptions): Placement {
  const opt = opts.workers;
  const inline = opts.inlineChunks ?? (opt === undefined ? INLINE_CHUNKS : 0);
  if (opt instanceof DocStreamPool) return { pool: () => opt, inline, window: 2 * opt.size + 1 };
  const n = opt ?? defaultDocStreamWorkers();
  if (n <= 0) return { pool: undefined, inline: Infinity, window: 1 };
  return { pool: () => sharedDocStreamPool(n), inline, window: 2 * Math.max(1, Math.floor(n)) + 1 };
}

// ---------------------------------------------------------------------------------------------------------------
// Streams

/** One chunk sealed or opened: output pieces and plaintext length. */
interface Done {
  readonly pieces: Uint8Array[];
  readonly plainLen: number;
}

/**
 * Runs `work` over chunks with up to `window` in flight, yielding results in order. Errors surface in order too
 * (a chunk's failure is thrown when its turn comes).
 */
async function* ordered<T>(
  chunks: AsyncIterable<StreamChunk>,
  work: (c: StreamChunk, index: number) => Promise<T> | T,
  window: number,
): AsyncIterable<T> {
  const q: Promise<T>[] = [];
  let i = 0;
  try {
    for await (const c of chunks) {
      const j = i++;
      const p = Promise.resolve().then(() => work(c, j));
      p.catch(() => undefined);
      q.push(p);
      while (q.length >= window) yield await q.shift()!;
    }
    while (q.length > 0) yield await q.shift()!;
  } finally {
    await Promise.allSettled(q);
  }
}

/** Gets `c.data` into a transferable buffer: itself when it may be given away, else a copy into a ring buffer. */
function transferable(c: StreamChunk, ring: BufferRing, srcRing: BufferRing | undefined, giveUp: boolean) {
  const d = c.data;
  const whole = d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength;
  if (whole && (c.owned || giveUp || srcRing?.owns(d))) return d.buffer;
  const ab = ring.take(d.length);
  new Uint8Array(ab).set(d);
  return ab;
}

function nonceAt(prefix: Uint8Array, index: number, last: boolean): Uint8Array {
  return docStreamNonce(prefix, index, last, new Uint8Array(DOCSTREAM_NONCE_BYTES));
}

function keyObject(key: Uint8Array): KeyObject {
  return createSecretKey(key);
}

/**
 * Encrypts a plaintext stream (same contract as the WebCrypto `encryptStream`): the header first for a fresh stream,
 * then per chunk two pieces, ciphertext and its 16-byte tag.
 */
export async function* encryptStream(
  key: Uint8Array,
  params: DocStreamParams,
  source: AsyncIterable<Uint8Array>,
  opts: EncryptStreamOptions & NodeStreamOptions = {},
): AsyncIterable<Uint8Array> {
  const { header, k0 } = startEncrypt(key, opts);
  const aad = docStreamAad(params);
  const progress = progressCounter(header.chunkSize, k0, opts.onProgress);
  const place = placement(opts);
  const srcRing = rings.get(source);
  const ring = srcRing ?? new BufferRing();
  if (k0 === 0) yield header.bytes.slice();
  const check = (c: StreamChunk, i: number) => {
    if (c.last && c.data.length === 0 && i > 0)
      throw new ValiseError("bad_request", "nothing to encrypt at this chunk: the plaintext ends before it");
  };
  const ko = keyObject(key);
  const inline = (c: StreamChunk, i: number): Done => {
    check(c, i);
    const cipher = createCipheriv("aes-256-gcm", ko, nonceAt(header.noncePrefix, i, c.last));
    cipher.setAAD(aad);
    const out = cipher.update(c.data);
    cipher.final();
    const tag = cipher.getAuthTag();
    if (srcRing?.owns(c.data)) srcRing.give(c.data.buffer as ArrayBuffer);
    return { pieces: [out, tag], plainLen: c.data.length };
  };
  const pooled = async (pool: DocStreamPool, c: StreamChunk, i: number): Promise<Done> => {
    check(c, i);
    const length = c.data.length; // before the transfer detaches it
    const data = transferable(c, ring, srcRing, opts.transferInput === true);
    const r = await pool.run({
      op: 0,
      key,
      nonce: nonceAt(header.noncePrefix, i, c.last),
      aad,
      data,
      offset: 0,
      length,
    });
    ring.give(r.data);
    if (r.error !== undefined || !r.out || !r.tag) throw new ValiseError("internal", `encryption failed: ${r.error}`);
    return { pieces: [new Uint8Array(r.out, 0, r.outLength), r.tag], plainLen: length };
  };
  let i = k0;
  const chunks = rechunk(source, header.chunkSize);
  const pool = place.pool;
  if (!pool) {
    // the calling thread only: sealed as they come, without the queue (one async generator less per chunk)
    for await (const c of chunks) {
      const d = inline(c, i);
      progress(i++, d.plainLen);
      yield d.pieces[0]!;
      yield d.pieces[1]!;
    }
    return;
  }
  for await (const d of ordered(
    chunks,
    (c, j) => (j >= place.inline ? pooled(pool(), c, k0 + j) : inline(c, k0 + j)),
    place.window,
  )) {
    progress(i++, d.plainLen);
    yield d.pieces[0]!;
    yield d.pieces[1]!;
  }
}

function authFailed(i: number, last: boolean): ValiseError {
  return docStreamError(
    last
      ? `chunk ${i} failed authentication (tampered, wrong object/version/label, or the stream was truncated)`
      : `chunk ${i} failed authentication (tampered, reordered or wrong object/version/label)`,
    { chunk: i },
  );
}

/**
 * Decrypts a ciphertext stream (same contract as the WebCrypto `decryptStream`): exactly one piece of verified
 * plaintext per chunk, `protocol_error` (details.docstream) on any tampering, truncation or extension.
 */
export async function* decryptStream(
  key: Uint8Array,
  params: DocStreamParams,
  source: AsyncIterable<Uint8Array>,
  opts: DecryptStreamOptions & NodeStreamOptions = {},
): AsyncIterable<Uint8Array> {
  const srcRing = rings.get(source);
  const { header, k0, body } = await startDecrypt(key, source, opts);
  const aad = docStreamAad(params);
  const progress = progressCounter(header.chunkSize, k0, opts.onProgress);
  const place = placement(opts);
  const ring = srcRing ?? new BufferRing();
  const ko = keyObject(key);
  const inline = (c: StreamChunk, i: number): Done => {
    checkCipherChunk(c, i, k0);
    const n = c.data.length - DOCSTREAM_TAG_BYTES;
    const d = createDecipheriv("aes-256-gcm", ko, nonceAt(header.noncePrefix, i, c.last));
    d.setAAD(aad);
    d.setAuthTag(c.data.subarray(n));
    const out = d.update(c.data.subarray(0, n));
    try {
      d.final();
    } catch {
      throw authFailed(i, c.last);
    }
    if (srcRing?.owns(c.data)) srcRing.give(c.data.buffer as ArrayBuffer);
    return { pieces: [out], plainLen: n };
  };
  const pooled = async (pool: DocStreamPool, c: StreamChunk, i: number): Promise<Done> => {
    checkCipherChunk(c, i, k0);
    const length = c.data.length;
    const data = transferable(c, ring, srcRing, opts.transferInput === true);
    const r = await pool.run({
      op: 1,
      key,
      nonce: nonceAt(header.noncePrefix, i, c.last),
      aad,
      data,
      offset: 0,
      length,
    });
    ring.give(r.data);
    if (r.error !== undefined || !r.out) throw authFailed(i, c.last);
    return { pieces: [new Uint8Array(r.out, 0, r.outLength)], plainLen: r.outLength ?? 0 };
  };
  let i = k0;
  const chunks = rechunk(body, header.chunkSize + DOCSTREAM_TAG_BYTES);
  const pool = place.pool;
  if (!pool) {
    // the calling thread only: opened as they come, without the queue
    for await (const c of chunks) {
      const d = inline(c, i);
      progress(i++, d.plainLen);
      yield d.pieces[0]!;
    }
    return;
  }
  for await (const d of ordered(
    chunks,
    (c, j) => (j >= place.inline ? pooled(pool(), c, k0 + j) : inline(c, k0 + j)),
    place.window,
  )) {
    progress(i++, d.plainLen);
    yield d.pieces[0]!;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

/**
 * Encrypts the file at `path` to a ciphertext stream (e.g. an HTTP request body). With `fromChunk` = k the file is
 * read from plaintext offset k · chunkSize and the stream starts at ciphertext offset `docStreamChunkOffset(k)`.
 */
export function encryptFile(
  path: string,
  params: DocStreamParams,
  key: Uint8Array,
  opts: EncryptStreamOptions & NodeStreamOptions = {},
): AsyncIterable<Uint8Array> {
  const { header, k0 } = startEncrypt(key, opts);
  const source = readFilePieces(path, {
    start: docStreamPlaintextOffset(k0, header.chunkSize),
    pieceSize: header.chunkSize,
  });
  return encryptStream(key, params, source, { ...opts, header: header.bytes });
}

/**
 * Decrypts a ciphertext stream into the file at `path`; returns the plaintext size of the whole file. With
 * `fromChunk` = k (and the header) the source starts at `docStreamChunkOffset(k)` and the file is truncated to
 * k · chunkSize and continued. Only verified chunks are ever written, but after an error the file holds a verified
 * prefix, not the document: resume it or delete it. `overwrite` rewrites an existing file in place (see writeToFile).
 */
export async function decryptToFile(
  path: string,
  params: DocStreamParams,
  key: Uint8Array,
  source: AsyncIterable<Uint8Array>,
  opts: DecryptStreamOptions & NodeStreamOptions & { sync?: boolean; overwrite?: boolean } = {},
): Promise<number> {
  const k0 = opts.fromChunk ?? 0;
  let header = opts.header;
  let body = source;
  const srcRing = rings.get(source);
  if (!header) {
    const s = await splitHeader(source);
    header = s.header;
    body = s.rest;
    if (srcRing) rings.set(body, srcRing);
  }
  const chunkSize = startEncrypt(key, { header, fromChunk: k0 }).header.chunkSize;
  const position = docStreamPlaintextOffset(k0, chunkSize);
  const written = await writeToFile(decryptStream(key, params, body, { ...opts, header, fromChunk: k0 }), path, {
    position,
    truncate: opts.overwrite !== true,
    ...(opts.sync !== undefined ? { sync: opts.sync } : {}),
  });
  return position + written;
}

/** Reads a ciphertext file for `decryptToFile`/`decryptStream`: header and chunks in separate, aligned pieces. */
export function readCiphertextFile(path: string, opts: { fromChunk?: number; chunkSize?: number } = {}) {
  const chunkSize = opts.chunkSize ?? DOCSTREAM_CHUNK_SIZE;
  const k = opts.fromChunk ?? 0;
  return k === 0
    ? readFilePieces(path, { pieceSize: chunkSize + DOCSTREAM_TAG_BYTES, firstPiece: DOCSTREAM_HEADER_BYTES })
    : readFilePieces(path, {
        start: DOCSTREAM_HEADER_BYTES + k * (chunkSize + DOCSTREAM_TAG_BYTES),
        pieceSize: chunkSize + DOCSTREAM_TAG_BYTES,
      });
}

/** The Node implementation as the `StreamCipher` the documents and cables clients take. */
export function nodeStreamCipher(chunkSize = DOCSTREAM_CHUNK_SIZE, node: NodeStreamOptions = {}): StreamCipher {
  return {
    ...streamCipherOf(
      chunkSize,
      (key, params, src, o) => encryptStream(key, params, src, { ...o, ...node }),
      (key, params, src, o) => decryptStream(key, params, src, { ...o, ...node }),
    ),
    newHash: () => {
      const h = createHash("sha256");
      return { update: (b) => void h.update(b), digest: () => new Uint8Array(h.copy().digest()) };
    },
  };
}
