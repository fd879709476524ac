/**
 * Moving encrypted content: plaintext sources, the resumable upload of a streamed ciphertext in parts, and the
 * resumable download that yields only verified plaintext. Browser-safe; the stream cipher is injected (WebCrypto by
 * default, the Node worker-pool cipher from `node/docstream.ts` in the CLI).
 */
import { ValiseError, concatBytes, runningSha256, toBase64, type RunningHash } from "@valise/core";
import type { HttpTransport } from "./transport.js";
import { MAX_WHOLE_BLOB } from "@valise/core/wire";

/** A plaintext that can be read again from any offset (a file, a browser File, bytes): uploads resume with it. */
export interface PlainSource {
  readonly size: number;
  open(offset: number): AsyncIterable<Uint8Array>;
}

export interface Progress {
  (done: number, total: number): void;
}

export function bytesSource(bytes: Uint8Array): PlainSource {
  return {
    size: bytes.length,

    async *open(offset: number) {
      if (offset < bytes.length) yield bytes.subarray(offset);
    },
  };
}

/** Sources one after another, as one source (a cable's header and its attachments). */
export function concatSources(parts: PlainSource[]): PlainSource {
  const size = parts.reduce((n, p) => n + p.size, 0);
  return {
    size,
    async *open(offset: number) {
      let base = 0;
      for (const p of parts) {
        if (offset < base + p.size) yield* p.open(Math.max(0, offset - base));
        base += p.size;
      }
    },
  };
}

/** Collects an async iterable of byte pieces into one array (small content only). */
export async function collect(source: AsyncIterable<Uint8Array>, max = 64 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of source) {
    n += p.length;
    if (n > max) throw new ValiseError("too_large", `content larger than ${max} bytes`);
    parts.push(p);
  }
  return concatBytes(...parts);
}

/**
 * Reads exactly `n` bytes from the front of a byte stream; returns them and an iterable over the rest. Used to
 * split a decrypted cable into its header and attachments without holding the attachments.
 */
export class ByteReader {
  private buf: Uint8Array = new Uint8Array(0);
  private readonly it: AsyncIterator<Uint8Array>;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }
  async read(n: number): Promise<Uint8Array> {
    while (this.buf.length < n) {
      const r = await this.it.next();
      if (r.done) throw new ValiseError("protocol_error", "content ended early");
      const nb = new Uint8Array(this.buf.length + r.value.length);
      nb.set(this.buf);
      nb.set(r.value, this.buf.length);
      this.buf = nb;
    }
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  /** The next `n` bytes as pieces, without buffering them all. */
  async *take(n: number): AsyncIterable<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0) {
        const r = await this.it.next();
        if (r.done) throw new ValiseError("protocol_error", "content ended early");
        this.buf = r.value;
      }
      const piece = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(piece.length);
      left -= piece.length;
      yield piece;
    }
  }
  async end(): Promise<void> {
    if (this.buf.length > 0) throw new ValiseError("protocol_error", "unexpected bytes after the content");
    const r = await this.it.next();
    if (!r.done && r.value.length > 0) throw new ValiseError("protocol_error", "unexpected bytes after the content");
  }
}

/** Which object a stream belongs to: bound into every chunk's authenticated data. */
export interface StreamParams {
  objectId: string;
  version: number;
  label: string;
}

/**
 * The streamed AEAD (see `@valise/core` docstream): encryption is deterministic given key and header, so both
 * directions can restart at a chunk boundary.
 */
export interface StreamCipher {
  readonly chunkSize: number;
  readonly headerSize: number;
  ciphertextSize(plainSize: number): number;
  /** Ciphertext offset of chunk `k` (k = 0: just after the header). */
  chunkOffset(k: number): number;
  /** A fresh header for a new stream under `key` (nonce prefix, key commitment). */
  newHeader(key: Uint8Array): Uint8Array;
  /** Ciphertext from chunk `fromChunk` on (the header first when 0), from plaintext starting at that chunk. */
  encrypt(
    key: Uint8Array,
    header: Uint8Array,
    params: StreamParams,
    plaintext: AsyncIterable<Uint8Array>,
    fromChunk: number,
  ): AsyncIterable<Uint8Array>;
  /** Verified plaintext from chunk `fromChunk` on, from ciphertext starting at `chunkOffset(fromChunk)`. */
  decrypt(
    key: Uint8Array,
    header: Uint8Array,
    params: StreamParams,
    ciphertext: AsyncIterable<Uint8Array>,
    fromChunk: number,
  ): AsyncIterable<Uint8Array>;
  /** The running SHA-256 an upload keeps of the plaintext it encrypted (default: @noble/hashes). */
  newHash?(): RunningHash;
}

/**
 * What an upload has encrypted so far, kept (sealed with the profile) before any of it goes on the wire: the first
 * `plain` bytes of the source and their SHA-256. A resume re-reads those bytes and continues only if they hash the
 * same, so no chunk nonce is ever used again with a different plaintext, whatever the server says it holds.
 */
export interface UploadCheckpoint {
  plain: number;
  /** SHA-256 of source bytes [0, plain), base64. */
  sha256: string;
}

/** Why `uploadEncrypted` refused to resume: `details.resume` on the `conflict` error. */
export type ResumeRefusal = "different_file" | "unverifiable";

/** Upload parts: a failed part is retried from where the server's byte count stands. */
export const UPLOAD_PART = 8 * 1024 * 1024;
const MAX_STALLS = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const retryable = (e: unknown) => !(e instanceof ValiseError) || e.code === "transport_error";

/**
 * Encrypts `source` and uploads it as a new blob in parts of UPLOAD_PART; after a dropped connection asks the
 * server how much it holds and re-encrypts from that chunk. Returns the blob id and ciphertext size.
 */
export async function uploadEncrypted(
  transport: HttpTransport,
  cipher: StreamCipher,
  key: Uint8Array,
  params: StreamParams,
  source: PlainSource,
  onProgress?: Progress,
  resumable?: {
    /**
     * Continue this blob (same key, header and plaintext) from the server's byte count. `sent` is the last checkpoint
     * kept: the source's first `sent.plain` bytes must hash to it, or the resume is refused (`conflict`,
     * `details.resume` "different_file"; "unverifiable" without a checkpoint) before anything is sent.
     */
    resume?: { blob: string; header: Uint8Array; sent?: UploadCheckpoint | undefined };
    /** Called once the blob exists, before any byte is sent: record what a later resume needs. */
    onCreated?: (blob: string, header: Uint8Array) => Promise<void>;
    /** Called before each part is sent when it carries plaintext not yet kept: keep the checkpoint (awaited). */
    onCheckpoint?: (c: UploadCheckpoint) => Promise<void>;
  },
): Promise<{ blob: string; size: number }> {
  const header = resumable?.resume?.header ?? cipher.newHeader(key);
  const total = cipher.ciphertextSize(source.size);
  // The plaintext encrypted so far (`hashed` bytes from the start) and what is kept of it (`kept` bytes).
  const hash = cipher.newHash?.() ?? runningSha256();
  let hashed = 0;
  let kept = 0;
  let id: string;
  let received = 0;
  const resume = resumable?.resume;
  if (resume) {
    id = resume.blob;
    const sent = resume.sent;
    if (!sent)
      throw new ValiseError(
        "conflict",
        `the interrupted upload ${id} kept no record of what it sent, so it cannot be checked: upload the file again`,
        { resume: "unverifiable" satisfies ResumeRefusal },
      );
    hashed = await hashPrefix(source, sent.plain, hash);
    if (hashed !== sent.plain || toBase64(hash.digest()) !== sent.sha256)
      throw new ValiseError(
        "conflict",
        "this is not the file that was being uploaded (its content differs from the part already sent): upload it again",
        { resume: "different_file" satisfies ResumeRefusal },
      );
    kept = hashed;
    const st = await transport.blobStatus(id).catch((e: unknown) => {
      // Only the device that began an upload may continue it (the server tells another device of the user no more).
      if (e instanceof ValiseError && e.code === "conflict")
        throw new ValiseError(
          "forbidden",
          `blob ${id} is being uploaded by another of your devices; only it can continue`,
        );
      throw e;
    });
    if (st.size !== total)
      throw new ValiseError("conflict", `blob ${id} is ${st.size} bytes, not ${total}: the file has changed`, {
        resume: "different_file" satisfies ResumeRefusal,
      });
    received = st.received;
  } else if (resumable === undefined && total <= MAX_WHOLE_BLOB) {
    // Small and not resumable (a cable's body): encrypted in memory and sent whole, one request instead of two.
    return uploadWhole(transport, cipher, key, header, params, source, total, onProgress);
  } else {
    id = (await transport.createBlob(total)).id;
    await resumable?.onCreated?.(id, header);
  }
  const onCheckpoint = resumable?.onCheckpoint;
  /** Taps the plaintext on its way to the cipher: bytes past `hashed` go into the running hash. */
  async function* tap(from: number): AsyncIterable<Uint8Array> {
    let pos = from;
    for await (const p of source.open(from)) {
      const end = pos + p.length;
      if (end > hashed) {
        hash.update(hashed > pos ? p.subarray(hashed - pos) : p);
        hashed = end;
      }
      pos = end;
      yield p;
    }
  }
  let stalls = 0;
  onProgress?.(received, total);
  while (received < total) {
    const before = received;
    try {
      const k = received < cipher.headerSize ? 0 : Math.floor((received - cipher.headerSize) / (cipher.chunkSize + 16));
      // The server cannot hold a chunk this device never encrypted: continuing there would leave a hole in the hash.
      if (k * cipher.chunkSize > hashed)
        throw new ValiseError(
          "protocol_error",
          `the server says blob ${id} holds ${received} bytes, more than this device ever sent`,
        );
      const start = k === 0 ? 0 : cipher.chunkOffset(k);
      let skip = received - start;
      let part: Uint8Array[] = [];
      let partLen = 0;
      // One part on the wire while the next is encrypted: parts go out strictly in order (each at the offset the
      // previous one reached), at most two parts in memory.
      let inflight: Promise<void> = Promise.resolve();
      let sentTo = received;
      const flush = async () => {
        const body = joinParts(part);
        part = [];
        partLen = 0;
        await inflight;
        // Keep what was encrypted before it leaves: a resume must find the same plaintext up to here.
        if (onCheckpoint && hashed > kept) {
          const upTo = hashed;
          await onCheckpoint({ plain: upTo, sha256: toBase64(hash.digest()) });
          kept = upTo;
        }
        const at = sentTo;
        sentTo += body.length;
        inflight = transport.appendBlob(id, at, body).then((st) => {
          received = st.received;
          onProgress?.(received, total);
        });
        inflight.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
      };
      try {
        for await (const piece0 of cipher.encrypt(key, header, params, tap(k * cipher.chunkSize), k)) {
          let piece = piece0;
          if (skip > 0) {
            const s = Math.min(skip, piece.length);
            piece = piece.subarray(s);
            skip -= s;
            if (piece.length === 0) continue;
          }
          part.push(piece);
          partLen += piece.length;
          if (partLen >= UPLOAD_PART) await flush();
        }
        if (partLen > 0) await flush();
      } finally {
        await inflight.catch(() => undefined);
      }
      await inflight;
      if (received !== total) throw new ValiseError("protocol_error", `upload ended at ${received} of ${total} bytes`);
    } catch (e) {
      if (!retryable(e) && !(e instanceof ValiseError && e.code === "offset_mismatch")) throw e;
      stalls = received > before ? 0 : stalls + 1;
      if (stalls > MAX_STALLS) throw e;
      await sleep(200 * stalls);
      received = (await transport.blobStatus(id)).received;
    }
  }
  return { blob: id, size: total };
}

/**
 * A blob of at most MAX_WHOLE_BLOB bytes encrypted in memory and sent in one request (POST /v1/blobs/whole). A
 * dropped connection sends it again, as a new blob (the same ciphertext: same key and header; an incomplete first one
 * is the reaper's).
 */
async function uploadWhole(
  transport: HttpTransport,
  cipher: StreamCipher,
  key: Uint8Array,
  header: Uint8Array,
  params: StreamParams,
  source: PlainSource,
  total: number,
  onProgress?: Progress,
): Promise<{ blob: string; size: number }> {
  const parts: Uint8Array[] = [];
  for await (const p of cipher.encrypt(key, header, params, source.open(0), 0)) parts.push(p);
  const body = joinParts(parts);
  if (body.length !== total)
    throw new ValiseError("protocol_error", `encrypted ${body.length} bytes, expected ${total}: the source changed`);
  onProgress?.(0, total);
  for (let attempt = 1; ; attempt++) {
    try {
      const st = await transport.putWholeBlob(body);
      if (!st.complete || st.size !== total)
        throw new ValiseError("protocol_error", `the server stored ${st.received} of ${total} bytes as complete`);
      onProgress?.(total, total);
      return { blob: st.id, size: total };
    } catch (e) {
      if (!retryable(e) || attempt > MAX_STALLS) throw e;
      await sleep(200 * attempt);
    }
  }
}

/** Feeds the source's first `n` bytes to `hash`; returns how many there were (fewer when the source is shorter). */
async function hashPrefix(source: PlainSource, n: number, hash: RunningHash): Promise<number> {
  let got = 0;
  if (n === 0) return 0;
  for await (const p of source.open(0)) {
    const take = Math.min(p.length, n - got);
    hash.update(take === p.length ? p : p.subarray(0, take));
    got += take;
    if (got === n) break;
  }
  return got;
}

function joinParts(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(...parts);
}

async function* streamOf(body: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return;
      yield r.value;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

/**
 * Downloads and decrypts a blob, yielding only verified plaintext, chunk by chunk. A dropped connection resumes
 * with a range request at the next chunk not yet yielded.
 */
export async function* downloadDecrypted(
  transport: HttpTransport,
  cipher: StreamCipher,
  key: Uint8Array,
  params: StreamParams,
  blob: string,
  onProgress?: Progress,
): AsyncIterable<Uint8Array> {
  const st = await transport.blobStatus(blob);
  const total = st.size;
  const header = await collectHeader(await transport.readBlob(blob, 0, cipher.headerSize - 1), cipher.headerSize);
  let k = 0;
  let stalls = 0;
  let done = 0;
  onProgress?.(0, total);
  for (;;) {
    const before = k;
    try {
      const body = await transport.readBlob(blob, cipher.chunkOffset(k));
      for await (const plain of cipher.decrypt(key, header, params, streamOf(body), k)) {
        k++;
        done = Math.min(total, cipher.chunkOffset(k));
        onProgress?.(done, total);
        yield plain;
      }
      onProgress?.(total, total);
      return;
    } catch (e) {
      if (!retryable(e)) throw e;
      stalls = k > before ? 0 : stalls + 1;
      if (stalls > MAX_STALLS) throw e;
      await sleep(200 * stalls);
    }
  }
}

async function collectHeader(body: ReadableStream<Uint8Array>, n: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const out = new Uint8Array(n);
  let got = 0;
  try {
    while (got < n) {
      const r = await reader.read();
      if (r.done) throw new ValiseError("protocol_error", "blob shorter than its header");
      const take = Math.min(n - got, r.value.length);
      out.set(r.value.subarray(0, take), got);
      got += take;
    }
  } finally {
    await reader.cancel().catch(() => undefined); // the rest is fetched by range requests
  }
  return out;
}
